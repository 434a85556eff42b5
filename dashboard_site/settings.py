"""The site's settings: its decisions, with every environment variable read through env.py.

The embedded default (nothing set) is SQLite in the project folder, the in-process channel
layer and DEBUG on, so `manage.py runserver` works on a fresh machine. Production sets
DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, and usually DATABASE_URL and
REDIS_URL. README.md's "Configuration" table lists every variable; dashboard_site/env.py
parses and checks them (a bad value stops the process with a message naming it), and
realtime/conf.py holds the REALTIME_* settings' defaults and rules.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from dashboard_site import env
from realtime import conf as realtime_conf

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Debug, secrets and hosts ---------------------------------------------------------------

DEBUG = env.boolean("DJANGO_DEBUG", True)
_secret_key = env.text("DJANGO_SECRET_KEY", shown="a development-only key with DJANGO_DEBUG=1, required otherwise")
if not _secret_key and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG=0 there is no default secret key: "
        "set DJANGO_SECRET_KEY to a long random string, for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
SECRET_KEY = _secret_key or "insecure-development-key-only-used-when-DJANGO_DEBUG-is-on"
ALLOWED_HOSTS = env.hosts("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [],
                          shown="localhost,127.0.0.1,[::1] when debugging, else none")
CSRF_TRUSTED_ORIGINS = env.origins("DJANGO_CSRF_TRUSTED_ORIGINS", [])


def is_local_host(host):
    """An ALLOWED_HOSTS entry only this machine can reach (the same rule as dashboard_site/checks.py)."""
    host = host.strip().lower()
    return host in ("localhost", "127.0.0.1", "[::1]", "::1", "testserver") or host.endswith(".localhost")


# A deployment that forgets DJANGO_DEBUG=0 would serve the public development key (anyone could
# forge a session) and debug pages to other machines: refuse to start instead.
if DEBUG and not _secret_key and not all(map(is_local_host, ALLOWED_HOSTS)):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is on (the default) and DJANGO_SECRET_KEY is not set, but DJANGO_ALLOWED_HOSTS "
        f"lists hosts other machines reach ({', '.join(h for h in ALLOWED_HOSTS if not is_local_host(h))}). "
        "The public development key must never serve them: for a deployment set DJANGO_DEBUG=0 and "
        "DJANGO_SECRET_KEY (a long random string). Debug mode is for localhost, 127.0.0.1, [::1] "
        "and *.localhost only."
    )

# --- Applications ---------------------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",  # must come first: `runserver` then serves HTTP and WebSockets
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from /static/ (no CDN)
    "realtime",
    "tasks",
    "axes",  # sign-in lockout (see "Sign-in, CSP and endpoint exposure" below)
    "csp",
    "dashboard_site.checks.SiteChecksConfig",  # the site's own system checks
]

MIDDLEWARE = [
    "dashboard_site.api_errors.ApiHostCheck",  # a refused Host gets JSON under /api/, DEBUG or not
    "django.middleware.security.SecurityMiddleware",
    "dashboard_site.static_files.StaticFilesMiddleware",  # WhiteNoise, off the non-static path
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "realtime.actor.ActorMiddleware",  # changes a request writes name its user (realtime/changes.py)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard_site.urls"
ASGI_APPLICATION = "dashboard_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tasks.context_processors.lifecycle",  # the statuses and actions the pages' scripts read
            ],
        },
    },
]

# --- Real-time stream -------------------------------------------------------------------------

# Every REALTIME_* setting from the environment variable of the same name, or its default
# (realtime/conf.py says what each means and what it accepts).
_realtime = {name: env.setting(name, rule) for name, rule in realtime_conf.SETTINGS.items()}
globals().update(_realtime)
env.renamed("REALTIME_SYNC_PART_BYTES", "REALTIME_MAX_SEND_BYTES")
# The agents' liveness sweep is offered every second, task retention every 5 s; each one's
# database lease lets one process run it per interval (AGENT_SWEEP_INTERVAL; a minute).
REALTIME_PERIODIC_JOBS = [("tasks.liveness.run_due_sweep", 1.0), ("tasks.retention.run_due_retirement", 5.0)]

# --- Database ---------------------------------------------------------------------------------

_database_url = env.database_url("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
                                 shown="sqlite:///<project>/db.sqlite3")
_conn_max_age = env.whole("DATABASE_CONN_MAX_AGE", 60, "seconds", zero="a new connection per request")
_pool = env.boolean("DATABASE_POOL", False)
_pool_size = env.whole("DATABASE_POOL_SIZE", 20, "connections")
_pool_timeout = env.seconds("DATABASE_POOL_TIMEOUT", 5.0)
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=_conn_max_age, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend with one queue per process for the write lock, so concurrent
    # writers are woken in turn instead of polling (dashboard_site/sqlite/base.py). Writers
    # wait for the lock (the busy timeout is the stream lock timeout, realtime/sequencing.py);
    # IMMEDIATE transactions take the write lock up front, so two writers never deadlock
    # upgrading a read lock.
    DATABASES["default"]["ENGINE"] = "dashboard_site.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        "timeout": _realtime["REALTIME_STREAM_LOCK_TIMEOUT"],
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif _pool:
    # PostgreSQL, opt-in: Django's psycopg pool in place of the connection each request thread
    # keeps. With CONN_HEALTH_CHECKS, each checkout is checked with a trivial query, so
    # connections a database restart killed are replaced, not handed to a request. Not the
    # default: a thread keeps its pooled connection until Django closes it, so a process with
    # more database threads than DATABASE_POOL_SIZE (the test suite's streams) ran out.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2, "max_size": _pool_size, "timeout": _pool_timeout,
    }
# Test databases get a per-process name (several test runs may share a machine); SQLite's
# lives in a file rather than in memory, so a daphne process started by a test shares it.
_test_name = f"dashboard_test_{os.getpid()}"
if DATABASES["default"]["ENGINE"] == "dashboard_site.sqlite":
    _test_name = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"{_test_name}.sqlite3")
DATABASES["default"]["TEST"] = {"NAME": _test_name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# HTTP requests run their synchronous parts on this many long-lived threads, each keeping its
# database connection (dashboard_site/request_threads.py); 0 is Django's thread per request.
REQUEST_THREADS = env.whole("DJANGO_REQUEST_THREADS", 8, "threads", zero="a thread and connection per request")
# Concurrent requests past REQUEST_THREADS that still get a thread of their own; past that
# the server answers 503 with Retry-After.
REQUEST_OVERFLOW = env.whole("DJANGO_REQUEST_OVERFLOW", 64, "requests", zero="none: answer 503 at once")

# --- Channel layer and cache ------------------------------------------------------------------

# REDIS_URL switches to channels-redis; unset means the in-process layer, which only works
# with one server process. The pub/sub layer was chosen by measurement (docs/operations.md):
# one Redis command per change instead of dozens, no connection-pool limit, and it
# resubscribes by itself after a Redis restart. What it may lose, the sequence numbers heal.
REDIS_URL = env.redis_url("REDIS_URL", "")
REDIS_PREFIX = env.text("REDIS_PREFIX", "dashboard", pattern=r"[A-Za-z0-9_.:-]+",
                        expected="letters, digits and _ . : - only, e.g. dashboard-staging")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL], "prefix": REDIS_PREFIX}}}
    # The API's throttle counters live in the cache: on Redis, every process shares them.
    # One connection pool per process, not one per request (dashboard_site/redis_cache.py).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": REDIS_PREFIX,
                          "OPTIONS": {"pool_class": "dashboard_site.redis_cache.SharedConnectionPool"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                  "CONFIG": {"capacity": 5000, "expiry": 30}}}

# --- Passwords, sign-in, pages ----------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic writes here; the nginx site in deploy/ serves /static/ from this folder.
STATIC_ROOT = env.absolute_path("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles", shown="<project>/staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Plain storage (not the manifest one) so a missing collectstatic never breaks a page;
    # WhiteNoise serves /static/ from the finders when STATIC_ROOT is empty.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- HTTPS and proxies ------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "dashboard_site.api_errors.csrf_failure"  # JSON under /api/, the usual page elsewhere
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Proxies whose X-Forwarded-For/-Proto are believed (addresses or networks); everyone else's
# are ignored. dashboard_site/proxy.py applies them to every HTTP and WebSocket connection,
# so there is no SECURE_PROXY_SSL_HEADER: the scheme arrives in the ASGI scope instead.
TRUSTED_PROXIES = env.networks("DJANGO_TRUSTED_PROXIES", [])
HTTPS = env.boolean("DJANGO_HTTPS", not DEBUG, shown="on when DJANGO_DEBUG=0")
_hsts_seconds = env.whole("DJANGO_HSTS_SECONDS", 0, "seconds", zero="no HSTS header")
_hsts_subdomains = env.boolean("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
_hsts_preload = env.boolean("DJANGO_HSTS_PRELOAD", False)
_ssl_redirect = env.boolean("DJANGO_SSL_REDIRECT", False)
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _hsts_subdomains
    SECURE_HSTS_PRELOAD = _hsts_preload
    SECURE_SSL_REDIRECT = _ssl_redirect
    # Health probes and scrapers talk plain HTTP to each process's own port, not via the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD:
        # Preloading is decided for the registrable domain (submitted at hstspreload.org), not
        # by one app on a subdomain; docs/deploy.md explains. Opt in with DJANGO_HSTS_PRELOAD=1.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Sign-in, CSP and endpoint exposure (docs/security.md) ------------------------------------

# Failed sign-ins (/accounts/login/, the admin's login, any authenticate() with a request) are
# counted by django-axes per user name and, separately, per client address; either count reaching
# LOGIN_FAILURE_LIMIT within LOGIN_LOCKOUT_MINUTES locks further attempts (even with the right
# password) until the cool-off ends or an administrator deletes the rows under
# /admin/axes/accessattempt/ (or runs `manage.py axes_reset`). 0 minutes: until unlocked.
AUTHENTICATION_BACKENDS = [
    # Refuses locked-out attempts and authenticates no one itself (ModelBackend below does), but
    # it is a ModelBackend for reading users: a session naming the first backend (force_login,
    # manage.py check_stream) still loads its user, here and in realtime/access.py.
    "axes.backends.AxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.whole("LOGIN_FAILURE_LIMIT", 5, "failed sign-ins")
_lockout_minutes = env.minutes("LOGIN_LOCKOUT_MINUTES", 15.0, zero="until an administrator unlocks")
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes) if _lockout_minutes else None
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # two separate counters, not the pair
AXES_RESET_ON_SUCCESS = False  # else one valid account would reset its address's counter
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True  # a refused try starts the wait again
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
# The client address is REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to
# be unless a trusted proxy sets it. (This also holds if django-ipware gets installed.)
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_IPWARE_PROXY_COUNT = None

# Content-Security-Policy on every response (django-csp 4): only this site's own files, no
# inline script or style, no nonce, no other host. The dashboard and the Django admin need no
# inline code (the admin's badges are classes in static/admin/dashboard-admin.css), and the
# API's Swagger page loads Swagger UI from /static/ (drf-spectacular-sidecar) and its start-up
# script from /api/docs/?script. connect-src 'self' covers the dashboard's ws:/wss: socket.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # the favicon and a few icons are data: SVGs
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# /metrics: with a token set, scrapers must send `Authorization: Bearer <token>`; without
# one, staff sessions and direct (not proxied) loopback requests may read it.
METRICS_TOKEN = env.text("METRICS_TOKEN", pattern=r"[!-~]+",
                         expected="printable characters without spaces (it is sent in an HTTP header)")

# --- Agents and the API (docs/api.md) ---------------------------------------------------------

AGENT_OFFLINE_AFTER = env.seconds("AGENT_OFFLINE_AFTER", 60.0)
AGENT_OFFLINE_TASK_POLICY = env.choice("AGENT_OFFLINE_TASK_POLICY", "requeue", ("requeue", "fail"))
AGENT_SWEEP_INTERVAL = env.seconds("AGENT_SWEEP_INTERVAL", 10.0)
# Finished tasks (succeeded, failed, cancelled) older than this many days are deleted by the
# periodic jobs; 0 keeps everything.
TASK_RETENTION_DAYS = env.whole("TASK_RETENTION_DAYS", 30, "days", zero="keep every task")
# How long a progress report waits for the batched write it joined before answering 503.
API_REPORT_WAIT = env.seconds("API_REPORT_WAIT", 10.0)
# How long a process trusts an agent token it has checked (tasks/tokens.py); 0 checks every request.
API_TOKEN_CACHE_SECONDS = env.seconds("API_TOKEN_CACHE_SECONDS", 5.0, zero="checks the database on every request")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tasks.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Counted in the cache (CACHES above): per process without Redis, shared with it.
    "DEFAULT_THROTTLE_RATES": {
        "agent": env.rate("API_AGENT_RATE", "600/min"),
        "operator": env.rate("API_OPERATOR_RATE", "300/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fleet dashboard API",
    "DESCRIPTION": "Agents report work; operators manage tasks. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from this site's /static/ (drf-spectacular-sidecar), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Names for the three `status` choice sets (otherwise drf-spectacular invents hashed names
    # like Status716Enum that change when the choices do).
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.models.Task.Status",
        "AgentStatusEnum": "tasks.models.Agent.Status",
        "ReportStatusEnum": "tasks.api.serializers.AGENT_STATUSES",
    },
}

# --- Logs -------------------------------------------------------------------------------------

# Request logs (the development server's, and Django's 4xx/5xx warnings) at
# DJANGO_REQUEST_LOG_LEVEL: run.py sets ERROR, since the demo fleet's expected 409s would
# flood the console; INFO shows every request. One handler each, no echo.
_request_log_level = env.log_level("DJANGO_REQUEST_LOG_LEVEL", "WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "realtime": {"level": _realtime["REALTIME_LOG_LEVEL"], "propagate": True},
        "tasks": {"level": "INFO", "propagate": True},
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"level": _request_log_level},
        "django.channels.server": {"level": _request_log_level, "handlers": ["console"], "propagate": False},
    },
}

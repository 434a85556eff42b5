"""Settings, read from the environment.

The embedded default (nothing set) is SQLite in the project folder, the in-process channel
layer and DEBUG on, so `manage.py runserver` works on a fresh machine. Production sets
DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, and usually DATABASE_URL and
REDIS_URL. Every variable is listed in README.md.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1 or 0")


def env_float(name, default, allow_zero=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number of seconds") from None
    if number < 0 or (number == 0 and not allow_zero):
        raise ImproperlyConfigured(f"{name} must be greater than zero, got {value!r}")
    return number


def env_int(name, default, minimum=0):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value!r}")
    return number


def env_list(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG=0 there is no default secret key: "
            "set DJANGO_SECRET_KEY to a long random string, for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DJANGO_DEBUG-is-on"

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

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
    "realtime",
    "tasks",
    "axes",  # sign-in lockout (see "Sign-in, CSP and endpoint exposure" below)
    "csp",
    "dashboard_site.checks.SiteChecksConfig",  # the site's own system checks
]

MIDDLEWARE = [
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
            ],
        },
    },
]

# Database: DATABASE_URL (postgres://..., sqlite:///path) or a SQLite file in the project.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once; IMMEDIATE transactions take
    # the write lock up front so two writers never deadlock upgrading a read lock.
    DATABASES["default"]["OPTIONS"] = {
        # The busy timeout is SQLite's stream lock timeout (realtime/sequencing.py).
        "timeout": env_float("REALTIME_STREAM_LOCK_TIMEOUT", 10.0),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Django's SQLite backend with one queue per process for the write lock, so concurrent
    # writers are woken in turn instead of polling (dashboard_site/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "dashboard_site.sqlite"
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", False):
    # Opt-in: Django's psycopg connection pool, in place of the connection each request thread
    # keeps (REQUEST_THREADS below). With CONN_HEALTH_CHECKS on, Django has the pool check each checkout with
    # a trivial query, so connections left dead by a database restart are replaced, not
    # handed to a request. A request that finds every connection busy waits
    # DATABASE_POOL_TIMEOUT seconds, then fails. Not the default: a thread keeps its pooled
    # connection until Django closes it, so a process with more database threads than
    # DATABASE_POOL_SIZE (the test suite's in-process streams) ran out of connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DATABASE_POOL_SIZE", 20, minimum=1),
        "timeout": env_float("DATABASE_POOL_TIMEOUT", 5.0),
    }
# HTTP requests run their synchronous parts on this many long-lived threads, each keeping its
# database connection (dashboard_site/request_threads.py); 0 is Django's thread per request.
REQUEST_THREADS = env_int("DJANGO_REQUEST_THREADS", 8)
# Concurrent requests past REQUEST_THREADS that still get a thread of their own; past that the
# server answers 503 with Retry-After.
REQUEST_OVERFLOW = env_int("DJANGO_REQUEST_OVERFLOW", 64)
# Test databases get a per-process name (several test runs may share a machine); SQLite's
# lives in a file rather than in memory, so a daphne process started by a test shares it.
_test_name = f"dashboard_test_{os.getpid()}"
if DATABASES["default"]["ENGINE"] == "dashboard_site.sqlite":
    _test_name = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"{_test_name}.sqlite3")
DATABASES["default"]["TEST"] = {"NAME": _test_name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channel layer: REDIS_URL switches to channels-redis; unset means the in-process layer,
# which only works with one server process. The pub/sub layer was chosen by measurement
# (docs/operations.md): one Redis command per change instead of dozens, no connection-pool
# limit, and it resubscribes by itself after a Redis restart. What it may lose while Redis
# is away, the sequence numbers heal.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("REDIS_PREFIX", "dashboard")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000, "expiry": 30}}}

# Throttle counters must be shared between processes: Redis when there is one.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": os.environ.get("REDIS_PREFIX", "dashboard"),
                          # One pool per process, not one per request (dashboard_site/redis_cache.py).
                          "OPTIONS": {"pool_class": "dashboard_site.redis_cache.SharedConnectionPool"}}}

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
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Plain storage (not the manifest one) so a missing collectstatic never breaks a page;
    # WhiteNoise serves /static/ from the finders when STATIC_ROOT is empty.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Security: safe by default when DEBUG is off.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "dashboard_site.api_errors.csrf_failure"  # JSON under /api/, the usual page elsewhere
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
# Proxies whose X-Forwarded-For/-Proto are believed (addresses or networks); everyone else's
# are ignored. dashboard_site/proxy.py applies them to every HTTP and WebSocket connection,
# so there is no SECURE_PROXY_SSL_HEADER: the scheme arrives in the ASGI scope instead.
TRUSTED_PROXIES = env_list("DJANGO_TRUSTED_PROXIES", [])
from dashboard_site.proxy import parse_networks  # noqa: E402 (fails fast on a bad entry)

parse_networks(TRUSTED_PROXIES)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
    # Health probes and scrapers talk plain HTTP to each process's own port, not via the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD:
        # Preloading is decided for the registrable domain (submitted at hstspreload.org), not
        # by one app on a subdomain; docs/deploy.md explains. Opt in with DJANGO_HSTS_PRELOAD=1.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Sign-in, CSP and endpoint exposure (docs/security.md) ----------------------------------


def is_local_host(host):
    """An ALLOWED_HOSTS entry only this machine can reach (the same rule as dashboard_site/checks.py)."""
    host = host.strip().lower()
    return host in ("localhost", "127.0.0.1", "[::1]", "::1", "testserver") or host.endswith(".localhost")


# A deployment that forgets DJANGO_DEBUG=0 would serve the public development key (anyone could
# forge a session) and debug pages to other machines: refuse to start instead.
if DEBUG and not os.environ.get("DJANGO_SECRET_KEY") and not all(map(is_local_host, ALLOWED_HOSTS)):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is on (the default) and DJANGO_SECRET_KEY is not set, but DJANGO_ALLOWED_HOSTS "
        f"lists hosts other machines reach ({', '.join(h for h in ALLOWED_HOSTS if not is_local_host(h))}). "
        "The public development key must never serve them: for a deployment set DJANGO_DEBUG=0 and "
        "DJANGO_SECRET_KEY (a long random string). Debug mode is for localhost, 127.0.0.1, [::1] "
        "and *.localhost only."
    )

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
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
_lockout_minutes = env_float("LOGIN_LOCKOUT_MINUTES", 15.0, allow_zero=True)
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

# Content-Security-Policy on every response (django-csp 4). No inline script or style anywhere:
# the dashboard and the Django admin need none (the admin's badges are classes in
# static/admin/dashboard-admin.css). Only a page that marks a tag with request.csp_nonce gets
# a nonce (the API's Swagger page, templates/drf_spectacular/swagger_ui.html). connect-src
# 'self' covers the dashboard's ws:/wss: socket to the same host and port.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],  # the favicon and a few icons are data: SVGs
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# --- end of sign-in, CSP and endpoint exposure settings -------------------------------------

# Real-time stream (DESIGN.md contract names).
REALTIME_HEARTBEAT_INTERVAL = env_float("REALTIME_HEARTBEAT_INTERVAL", 25.0)
REALTIME_HEARTBEAT_TIMEOUT = env_float("REALTIME_HEARTBEAT_TIMEOUT", 10.0)
# Deletions are remembered this long; a client that last synced before that gets a reset.
REALTIME_TOMBSTONE_RETENTION = env_float("REALTIME_TOMBSTONE_RETENTION", 7 * 24 * 3600.0)
# The history of changes (task and agent timelines, the throughput chart) is kept this many
# days and at most this many rows, whichever is less (realtime/changes.py).
REALTIME_HISTORY_DAYS = env_float("REALTIME_HISTORY_DAYS", 7.0)
REALTIME_HISTORY_MAX_ROWS = env_int("REALTIME_HISTORY_MAX_ROWS", 2_000_000, minimum=1000)
REALTIME_MAX_FRAME_BYTES = int(os.environ.get("REALTIME_MAX_FRAME_BYTES", "65536"))
# No frame the server sends is larger than this: `events` batches and `sync` parts are cut to
# fit (daphne refuses to send a message over 1 MiB; proxies and browsers have limits too).
REALTIME_MAX_SEND_BYTES = env_int(
    "REALTIME_MAX_SEND_BYTES", int(os.environ.get("REALTIME_SYNC_PART_BYTES") or 262144), minimum=16384
)
# Frames waiting for a socket whose server makes sends wait (uvicorn applies backpressure;
# daphne buffers): past this many bytes the reader is closed with 4008 (realtime/outbox.py).
REALTIME_MAX_OUTBOX_BYTES = env_int("REALTIME_MAX_OUTBOX_BYTES", 64 * 1024 * 1024, minimum=1024 * 1024)
# Long text fields (a task's error) travel as an excerpt of this many characters, with the
# row's `truncated` list naming the cut fields; the full text is in the admin and the API.
REALTIME_WIRE_TEXT_CHARS = env_int("REALTIME_WIRE_TEXT_CHARS", 2000, minimum=100)
# Access is checked again on this interval for every open socket (expired sessions are
# also closed on time, and logout, deactivation and permission changes at once).
REALTIME_AUTH_RECHECK_INTERVAL = env_float("REALTIME_AUTH_RECHECK_INTERVAL", 5.0)
# Syncs are built by at most this many threads per process; others wait their turn.
REALTIME_MAX_CONCURRENT_SYNCS = env_int("REALTIME_MAX_CONCURRENT_SYNCS", 4, minimum=1)
# A socket's subscribes closer together than this are answered once, at the end of the gap.
REALTIME_MIN_SUBSCRIBE_INTERVAL = env_float("REALTIME_MIN_SUBSCRIBE_INTERVAL", 1.0, allow_zero=True)
# Open sockets per user in one process; the next one is closed with 4030 (retry later).
REALTIME_MAX_SOCKETS_PER_USER = env_int("REALTIME_MAX_SOCKETS_PER_USER", 30, minimum=1)
# A writer waits at most this long for the stream lock, then fails with a clear error.
REALTIME_STREAM_LOCK_TIMEOUT = env_float("REALTIME_STREAM_LOCK_TIMEOUT", 10.0)
REALTIME_RATE_LIMIT = env_float("REALTIME_RATE_LIMIT", 20.0)  # messages per second, sustained
REALTIME_RATE_BURST = env_float("REALTIME_RATE_BURST", 60.0)
# How long a process waits for a missing sequence number before passing the gap on.
REALTIME_REORDER_WINDOW = env_float("REALTIME_REORDER_WINDOW", 0.25)
# How long clients are given to receive the 1012 close frames on SIGTERM.
REALTIME_SHUTDOWN_GRACE = env_float("REALTIME_SHUTDOWN_GRACE", 0.5)
# A subscribe without a view on a task table larger than this is answered with an error frame
# telling the client to use a view.
REALTIME_MAX_STREAM_ROWS = env_int("REALTIME_MAX_STREAM_ROWS", 50000, minimum=1)
# Bytes queued for all of one user's sockets in one process; the socket that passes it is
# closed with a retry code.
REALTIME_MAX_USER_OUTBOX_BYTES = env_int("REALTIME_MAX_USER_OUTBOX_BYTES", 128 * 1024 * 1024, minimum=1)

# /metrics: with a token set, scrapers must send `Authorization: Bearer <token>`; without
# one, staff sessions and direct (not proxied) loopback requests may read it.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# Agents (see docs/api.md).
AGENT_OFFLINE_AFTER = env_float("AGENT_OFFLINE_AFTER", 60.0)
AGENT_OFFLINE_TASK_POLICY = os.environ.get("AGENT_OFFLINE_TASK_POLICY", "requeue")
if AGENT_OFFLINE_TASK_POLICY not in ("requeue", "fail"):
    raise ImproperlyConfigured("AGENT_OFFLINE_TASK_POLICY must be 'requeue' or 'fail'")
AGENT_SWEEP_INTERVAL = env_float("AGENT_SWEEP_INTERVAL", 10.0)
# Finished tasks (succeeded, failed, cancelled) older than this many days are deleted by the
# periodic jobs; 0 keeps everything.
TASK_RETENTION_DAYS = env_int("TASK_RETENTION_DAYS", 30)
# How long a progress report waits for the batched write it joined before answering 503.
API_REPORT_WAIT = env_float("API_REPORT_WAIT", 10.0)

# Sync functions each server process runs periodically (realtime/hub.py), as
# (dotted path, seconds). They run in whichever processes are up; a job that must run once
# per interval across processes takes a database lease itself.
# The sweep is offered every second; its database lease lets one process run it per interval.
REALTIME_PERIODIC_JOBS = [("tasks.liveness.run_due_sweep", 1.0)]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tasks.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "agent": os.environ.get("API_AGENT_RATE", "600/min"),
        "operator": os.environ.get("API_OPERATOR_RATE", "300/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fleet dashboard API",
    "DESCRIPTION": "Agents report work; operators manage tasks. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "realtime": {"level": os.environ.get("REALTIME_LOG_LEVEL", "INFO"), "propagate": True},
        "tasks": {"level": "INFO", "propagate": True},
        # Request logs (the development server's, and Django's 4xx/5xx warnings) at
        # DJANGO_REQUEST_LOG_LEVEL: run.py sets ERROR, since the demo fleet's expected 409s
        # would flood the console; INFO shows every request. One handler each, no echo.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"level": os.environ.get("DJANGO_REQUEST_LOG_LEVEL", "WARNING")},
        "django.channels.server": {
            "level": os.environ.get("DJANGO_REQUEST_LOG_LEVEL", "WARNING"),
            "handlers": ["console"],
            "propagate": False,
        },
    },
}

# --- Agent API (tasks/api, docs/api.md) ---------------------------------------------------
# Names for the three `status` choice sets in the OpenAPI schema (otherwise drf-spectacular
# invents hashed names like Status716Enum that change when the choices do).
SPECTACULAR_SETTINGS = {
    **SPECTACULAR_SETTINGS,
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.models.Task.Status",
        "AgentStatusEnum": "tasks.models.Agent.Status",
        "ReportStatusEnum": "tasks.api.serializers.AGENT_STATUSES",
    },
}
# --- end of Agent API settings ------------------------------------------------------------

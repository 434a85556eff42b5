"""Settings come from the environment, fail fast on bad values and are safe with DEBUG off.

Most tests execute dashboard_site/settings.py afresh (runpy) under a controlled environment;
the ones about what a process does (exit status, Host checking) start a real subprocess.
"""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard_site import env as site_env

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "dashboard_site" / "settings.py"
# Every variable the settings read (env.py records each), and an old name they refuse.
VARIABLES = (*site_env.VARIABLES, "REALTIME_SYNC_PART_BYTES")
SECRET = "test-secret-" + "x" * 50


@pytest.fixture
def load(monkeypatch):
    """load(**env) -> the settings module's namespace under exactly that environment."""
    def run(**env):
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))
    return run


def clean_env(tmp_path, **env):
    """Environment for a subprocess: none of the project's variables unless given, and a
    scratch SQLite database so nothing touches the project's db.sqlite3."""
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    base.update(DJANGO_SETTINGS_MODULE="dashboard_site.settings", PYTHONUNBUFFERED="1",
                DATABASE_URL=f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
    base.update(env)
    return base


def run(args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


# Defaults ---------------------------------------------------------------------------------------


def test_defaults_are_the_embedded_development_setup(load):
    s = load()
    assert s["DEBUG"] is True
    assert s["SECRET_KEY"]  # a development key, only with DEBUG on
    assert s["DATABASES"]["default"]["ENGINE"] == "dashboard_site.sqlite"
    assert s["DATABASES"]["default"]["NAME"] == str(ROOT / "db.sqlite3")
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["REALTIME_HEARTBEAT_INTERVAL"] == 25.0
    assert s["REALTIME_HEARTBEAT_TIMEOUT"] == 10.0
    assert "localhost" in s["ALLOWED_HOSTS"]
    assert s.get("SESSION_COOKIE_SECURE", False) is False


# DEBUG off --------------------------------------------------------------------------------------


def test_debug_off_without_a_secret_key_is_refused(load):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load(DJANGO_DEBUG="0")


def test_debug_off_without_a_secret_key_exits_non_zero_naming_the_variable(tmp_path):
    result = run(["manage.py", "check", "--deploy"], clean_env(tmp_path, DJANGO_DEBUG="0"))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_debug_off_with_a_secret_makes_cookies_secure(load):
    s = load(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET, DJANGO_ALLOWED_HOSTS="dash.example.com")
    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == SECRET
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True
    assert s["ALLOWED_HOSTS"] == ["dash.example.com"]


def test_debug_off_allows_no_host_unless_told(load):
    assert load(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET)["ALLOWED_HOSTS"] == []


def test_allowed_hosts_is_a_comma_separated_list(load):
    s = load(DJANGO_ALLOWED_HOSTS=" a.example.com, b.example.com ,,", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET)
    assert s["ALLOWED_HOSTS"] == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize("value, expected", [("0", False), ("false", False), ("off", False), ("1", True), ("yes", True)])
def test_django_debug_accepts_common_boolean_spellings(load, value, expected):
    assert load(DJANGO_DEBUG=value, DJANGO_SECRET_KEY=SECRET)["DEBUG"] is expected


def test_a_bad_boolean_fails_with_a_clear_message(load):
    with pytest.raises(ImproperlyConfigured) as info:
        load(DJANGO_DEBUG="maybe")
    assert str(info.value) == ("DJANGO_DEBUG='maybe': expected 1 or 0 (or true/false, yes/no, on/off). "
                               "Unset, it defaults to 1.")


def test_production_process_checks_the_host_header(tmp_path):
    script = (
        "import json, django; django.setup()\n"
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "c = Client()\n"
        "print(json.dumps({\n"
        "  'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS,\n"
        "  'session_secure': settings.SESSION_COOKIE_SECURE, 'csrf_secure': settings.CSRF_COOKIE_SECURE,\n"
        "  'good': c.get('/accounts/login/', HTTP_HOST='dash.example.com').status_code,\n"
        "  'second': c.get('/accounts/login/', HTTP_HOST='ops.example.com').status_code,\n"
        "  'evil': c.get('/accounts/login/', HTTP_HOST='evil.example.net').status_code,\n"
        "}))\n"
    )
    env = clean_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET,
                    DJANGO_ALLOWED_HOSTS="dash.example.com,ops.example.com")
    result = run(["-c", script], env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"debug": False, "hosts": ["dash.example.com", "ops.example.com"],
                   "session_secure": True, "csrf_secure": True, "good": 200, "second": 200, "evil": 400}


def test_deploy_check_passes_without_errors_when_configured(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET, DJANGO_ALLOWED_HOSTS="dash.example.com")
    result = run(["manage.py", "check", "--deploy", "--fail-level", "ERROR"], env)
    assert result.returncode == 0, result.stderr
    assert "security.W009" not in result.stderr  # the secret key is strong enough
    assert "security.W018" not in result.stderr  # DEBUG is off
    assert "security.W012" not in result.stderr  # SESSION_COOKIE_SECURE
    assert "security.W016" not in result.stderr  # CSRF_COOKIE_SECURE


# Database and channel layer ---------------------------------------------------------------------


def test_database_url_selects_postgresql(load):
    s = load(DATABASE_URL="postgres://fleet:s3cret@db.internal:5433/fleetdb")
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == ("fleetdb", "fleet", "s3cret", "db.internal", 5433)
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True and "pool" not in db.get("OPTIONS", {})
    assert "/" not in db["TEST"]["NAME"]  # a database name, not a file
    # The pool is opt-in: connections reused across requests, each checked on checkout.
    pooled = load(DATABASE_URL="postgres://fleet@db.internal/fleetdb", DATABASE_POOL="1")["DATABASES"]["default"]
    assert pooled["CONN_MAX_AGE"] == 0 and pooled["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 5.0}


def test_database_url_selects_an_sqlite_file(load, tmp_path):
    path = tmp_path / "other.sqlite3"
    db = load(DATABASE_URL=f"sqlite:///{path}")["DATABASES"]["default"]
    assert db["ENGINE"] == "dashboard_site.sqlite"
    assert db["NAME"] == str(path)
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert db["TEST"]["NAME"].endswith(".sqlite3")


def test_redis_url_selects_channels_redis(load):
    s = load(REDIS_URL="redis://cache.internal:6380/2", REDIS_PREFIX="fleet")
    layer = s["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert layer["CONFIG"]["hosts"] == ["redis://cache.internal:6380/2"]
    assert layer["CONFIG"]["prefix"] == "fleet"


def test_without_redis_url_the_in_process_layer_is_used(load):
    assert load(REDIS_URL="")["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


# Heartbeat ---------------------------------------------------------------------------------------


def test_heartbeat_settings_are_read_from_the_environment(load):
    s = load(REALTIME_HEARTBEAT_INTERVAL="5", REALTIME_HEARTBEAT_TIMEOUT="2.5")
    assert s["REALTIME_HEARTBEAT_INTERVAL"] == 5.0
    assert s["REALTIME_HEARTBEAT_TIMEOUT"] == 2.5


@pytest.mark.parametrize("name, default", [("REALTIME_HEARTBEAT_INTERVAL", "25"), ("REALTIME_HEARTBEAT_TIMEOUT", "10")])
@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_a_heartbeat_that_is_not_a_positive_number_fails_clearly(load, name, default, value):
    with pytest.raises(ImproperlyConfigured) as info:
        load(**{name: value})
    assert str(info.value) == (f"{name}='{value}': expected a number of seconds, greater than 0. "
                               f"Unset, it defaults to {default}.")


def test_a_bad_heartbeat_stops_the_process_with_the_message(tmp_path):
    result = run(["manage.py", "check"], clean_env(tmp_path, REALTIME_HEARTBEAT_TIMEOUT="abc"))
    assert result.returncode != 0
    assert "REALTIME_HEARTBEAT_TIMEOUT='abc': expected a number of seconds, greater than 0" in result.stderr


def test_a_bad_offline_policy_fails_clearly(load):
    with pytest.raises(ImproperlyConfigured, match="AGENT_OFFLINE_TASK_POLICY"):
        load(AGENT_OFFLINE_TASK_POLICY="explode")


# DEBUG only on this machine --------------------------------------------------------------------


@pytest.mark.parametrize("hosts", ["dash.example.com", "*", "0.0.0.0", "localhost,dash.example.com", "192.168.1.5",
                                   ".example.com"])
def test_debug_with_the_development_key_and_a_public_host_is_refused(load, hosts):
    with pytest.raises(ImproperlyConfigured) as info:
        load(DJANGO_ALLOWED_HOSTS=hosts)
    message = str(info.value)
    assert "DJANGO_DEBUG=0" in message and "DJANGO_SECRET_KEY" in message
    assert hosts.split(",")[-1] in message  # names the host that is not local


def test_debug_with_the_development_key_is_fine_on_local_hosts(load):
    local = "localhost,127.0.0.1,[::1],::1,dashboard.localhost,.localhost,testserver,LOCALHOST"
    s = load(DJANGO_ALLOWED_HOSTS=local)
    assert s["DEBUG"] is True and len(s["ALLOWED_HOSTS"]) == 8


def test_the_refusal_stops_the_process_with_the_message(tmp_path):
    result = run(["manage.py", "check"], clean_env(tmp_path, DJANGO_ALLOWED_HOSTS="dash.example.com"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "set DJANGO_DEBUG=0 and DJANGO_SECRET_KEY" in result.stderr


def test_debug_on_public_hosts_fails_the_system_check_even_with_a_secret_key(tmp_path):
    env = clean_env(tmp_path, DJANGO_SECRET_KEY=SECRET, DJANGO_ALLOWED_HOSTS="localhost,dash.example.com")
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "dashboard.E001" in result.stderr and "dash.example.com" in result.stderr
    assert "localhost," not in result.stderr.split("dashboard.E001", 1)[1].split("\n", 1)[0]  # only the public one
    assert "DJANGO_DEBUG=0" in result.stderr


def test_the_system_check_passes_for_debug_on_local_hosts(tmp_path):
    result = run(["manage.py", "check"], clean_env(tmp_path, DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost"))
    assert result.returncode == 0, result.stderr
    assert "dashboard.E001" not in result.stderr + result.stdout


# /metrics in production ------------------------------------------------------------------------


def test_deploy_check_warns_when_debug_is_off_and_metrics_have_no_token(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET, DJANGO_ALLOWED_HOSTS="dash.example.com")
    result = run(["manage.py", "check", "--deploy"], env)
    assert "dashboard.W001" in result.stderr and "METRICS_TOKEN" in result.stderr
    env["METRICS_TOKEN"] = "scrape-" + "t" * 40
    result = run(["manage.py", "check", "--deploy"], env)
    assert "dashboard.W001" not in result.stderr


def test_the_metrics_warning_is_a_deployment_check_only(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET, DJANGO_ALLOWED_HOSTS="dash.example.com")
    result = run(["manage.py", "check"], env)
    assert result.returncode == 0, result.stderr
    assert "dashboard.W001" not in result.stderr


# Sign-in lockout and CSP -----------------------------------------------------------------------


def test_sign_in_lockout_defaults(load):
    from datetime import timedelta

    s = load()
    assert s["AXES_FAILURE_LIMIT"] == 5
    assert s["AXES_COOLOFF_TIME"] == timedelta(minutes=15)
    assert s["AXES_LOCKOUT_PARAMETERS"] == ["ip_address", "username"]
    assert s["AXES_IPWARE_META_PRECEDENCE_ORDER"] == ("REMOTE_ADDR",)
    assert s["AXES_HTTP_RESPONSE_CODE"] == 429
    assert s["AUTHENTICATION_BACKENDS"] == ["axes.backends.AxesBackend", "django.contrib.auth.backends.ModelBackend"]
    assert s["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"


def test_sign_in_lockout_is_read_from_the_environment(load):
    from datetime import timedelta

    s = load(LOGIN_FAILURE_LIMIT="3", LOGIN_LOCKOUT_MINUTES="2.5")
    assert s["AXES_FAILURE_LIMIT"] == 3 and s["AXES_COOLOFF_TIME"] == timedelta(minutes=2.5)
    assert load(LOGIN_LOCKOUT_MINUTES="0")["AXES_COOLOFF_TIME"] is None  # locked until unlocked


LOCKOUT_MINUTES = ("expected a number of minutes, 0 or more (0: until an administrator unlocks). "
                   "Unset, it defaults to 15.")


@pytest.mark.parametrize("env, message", [
    ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT='0': expected a whole number of failed sign-ins, at least 1. "
                                   "Unset, it defaults to 5."),
    ({"LOGIN_FAILURE_LIMIT": "five"}, "LOGIN_FAILURE_LIMIT='five': expected a whole number of failed sign-ins"),
    ({"LOGIN_LOCKOUT_MINUTES": "-1"}, f"LOGIN_LOCKOUT_MINUTES='-1': {LOCKOUT_MINUTES}"),
    ({"LOGIN_LOCKOUT_MINUTES": "abc"}, f"LOGIN_LOCKOUT_MINUTES='abc': {LOCKOUT_MINUTES}"),
])
def test_bad_lockout_settings_fail_clearly(load, env, message):
    with pytest.raises(ImproperlyConfigured) as info:
        load(**env)
    assert str(info.value).startswith(message)


def test_the_content_security_policy_allows_no_inline_code(load):
    directives = load()["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    for name, sources in directives.items():
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, name
    assert directives["script-src"][0] == directives["style-src"][0] == "'self'"
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == directives["object-src"] == ["'none'"]

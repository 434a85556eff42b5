"""Settings come from the environment, fail fast on bad values and are safe with DEBUG off.

Most tests execute dashboard_site/settings.py afresh (runpy) under a controlled environment;
the ones about what a process does (exit status, Host checking) start a real subprocess.
"""
import json
import re
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


# Every variable in README.md's table -----------------------------------------------------------


def readme_table():
    """[(variables, default column)] of README.md's "Configuration" table, one entry per row."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            rows.append((re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]), cells[1]))
    return rows


def readme_meanings():
    """[(variables, meaning column)] of README.md's configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return [(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]), line.split("|")[3])
            for line in section.splitlines() if line.startswith("| `")]


def documented_defaults():
    """{variable: its default as README.md writes it}, for the rows whose default column is
    one backticked value per variable (`600/min`, `300/min`); other rows describe theirs."""
    defaults = {}
    for names, column in readme_table():
        values = re.findall(r"`([^`]+)`", column)
        if column.startswith("`") and len(values) >= len(names):
            defaults.update(zip(names, values))
    return defaults


README_VARIABLES = [name for names, _ in readme_table() for name in names]

# For each variable: a value it refuses (with the other variables it needs to be read at all),
# and one it accepts that is not its default (None: left unset). A new row in README.md needs
# an entry here.
VALUES = {
    "DJANGO_DEBUG": ("maybe", "off"),
    "DJANGO_SECRET_KEY": ((" ", {"DJANGO_DEBUG": "0"}), SECRET),
    "DJANGO_ALLOWED_HOSTS": ("https://dash.example.com", "dash.example.com,.example.net"),
    "DJANGO_CSRF_TRUSTED_ORIGINS": ("dash.example.com", "https://dash.example.com,https://*.example.net:8443"),
    "DJANGO_TRUSTED_PROXIES": ("10.0.0.0/8,proxy.internal", "127.0.0.1, ::1, 10.0.0.0/8"),
    "DJANGO_HTTPS": ("sometimes", "yes"),
    "DJANGO_HSTS_SECONDS": ("1y", "300"),
    "DJANGO_SSL_REDIRECT": ("2", "true"),
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": ("y", "1"),
    "DJANGO_HSTS_PRELOAD": ("maybe", "on"),
    "DJANGO_STATIC_ROOT": ("staticfiles", "/srv/dashboard/static"),
    "DATABASE_URL": ("mysql://db/dashboard", None),
    "DATABASE_CONN_MAX_AGE": ("-5", "0"),
    "DJANGO_REQUEST_THREADS": ("eight", "0"),
    "DJANGO_REQUEST_OVERFLOW": ("-1", "0"),
    "DATABASE_POOL": ("pooled", "1"),
    "DATABASE_POOL_SIZE": ("0", "5"),
    "DATABASE_POOL_TIMEOUT": ("0", "2.5"),
    "REDIS_URL": ("127.0.0.1:6379", "redis://cache.internal:6380/2"),
    "REDIS_PREFIX": ("my dashboard", "fleet-staging"),
    "REALTIME_HEARTBEAT_INTERVAL": ("25s", "20"),
    "REALTIME_HEARTBEAT_TIMEOUT": ("0", "7.5"),
    "REALTIME_TOMBSTONE_RETENTION": ("7d", "86400"),
    "REALTIME_HISTORY_DAYS": ("-7", "1.5"),
    "REALTIME_HISTORY_MAX_ROWS": ("999", "1000"),
    "REALTIME_MAX_FRAME_BYTES": ("64k", "1000"),
    "REALTIME_RATE_LIMIT": ("fast", "2.5"),
    "REALTIME_RATE_BURST": ("-60", "5"),
    "REALTIME_REORDER_WINDOW": ("0", "0.1"),
    "REALTIME_MAX_SEND_BYTES": ("4096", "16384"),
    "REALTIME_MAX_OUTBOX_BYTES": ("64MB", "1048576"),
    "REALTIME_MAX_USER_OUTBOX_BYTES": ("0", "1"),
    "REALTIME_WIRE_TEXT_CHARS": ("2.5", "100"),
    "REALTIME_AUTH_RECHECK_INTERVAL": ("-5", "0.5"),
    "REALTIME_MAX_SOCKETS_PER_USER": ("0", "1"),
    "REALTIME_MAX_CONCURRENT_SYNCS": ("many", "1"),
    "REALTIME_MIN_SUBSCRIBE_INTERVAL": ("-1", "0"),
    "REALTIME_MAX_STREAM_ROWS": ("0", "1"),
    "REALTIME_STREAM_LOCK_TIMEOUT": ("10ms", "0.5"),
    "REALTIME_SHUTDOWN_GRACE": ("-0.5", "2"),
    "REALTIME_LOG_LEVEL": ("LOUD", "warning"),
    "DJANGO_REQUEST_LOG_LEVEL": ("VERBOSE", "debug"),
    "METRICS_TOKEN": ("two words", "scrape-" + "t" * 40),
    "LOGIN_FAILURE_LIMIT": ("0", "1"),
    "LOGIN_LOCKOUT_MINUTES": ("-1", "0"),
    "AGENT_OFFLINE_AFTER": ("1m", "0.5"),
    "AGENT_OFFLINE_TASK_POLICY": ("explode", "FAIL"),
    "AGENT_SWEEP_INTERVAL": ("0", "1"),
    "TASK_RETENTION_DAYS": ("-1", "0"),
    "API_AGENT_RATE": ("lots", "10/second"),
    "API_OPERATOR_RATE": ("300/fortnight", "3/min"),
    "API_REPORT_WAIT": ("0", "0.25"),
    "API_TOKEN_CACHE_SECONDS": ("5 s", "0"),
}
BAD = {name: bad for name, (bad, _) in VALUES.items()}
GOOD = {name: good for name, (_, good) in VALUES.items()}


def test_readme_lists_every_variable_the_settings_read_and_each_has_test_values():
    assert len(README_VARIABLES) == len(set(README_VARIABLES)), "a variable has two rows"
    assert set(README_VARIABLES) == set(site_env.VARIABLES), "README.md's table and dashboard_site/env.py differ"
    assert set(BAD) == set(GOOD) == set(README_VARIABLES), "give each README variable a BAD and a GOOD value here"


@pytest.mark.parametrize("name", README_VARIABLES)
def test_a_bad_value_of_each_variable_stops_manage_py_check_naming_it(tmp_path, name):
    value, others = BAD[name] if isinstance(BAD[name], tuple) else (BAD[name], {})
    result = run(["manage.py", "check"], clean_env(tmp_path, **others, **{name: value}))
    assert result.returncode != 0, result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr[-3000:]
    assert name in error
    if value.strip():  # (an unset secret key is named, not quoted)
        assert f"{name}={value!r}: expected " in error
        default = documented_defaults().get(name)
        assert default is None or f"Unset, it defaults to {default}" in error, (default, error)


def test_zero_is_accepted_exactly_where_readme_says_what_it_means(load):
    meanings = {name: meaning for names, meaning in readme_meanings() for name in names}
    numeric, zero_ok = set(), set()
    for name in README_VARIABLES:
        try:
            load(**{name: "x"})
        except ImproperlyConfigured as error:
            if re.search(r": expected a (whole )?number", str(error)):
                numeric.add(name)
    for name in numeric:
        try:
            load(**{name: "0"})
            zero_ok.add(name)
        except ImproperlyConfigured:
            pass
    assert {name for name in numeric if "`0`" in meanings[name]} == zero_ok
    assert {"LOGIN_LOCKOUT_MINUTES", "DATABASE_CONN_MAX_AGE", "TASK_RETENTION_DAYS", "DJANGO_REQUEST_OVERFLOW",
            "API_TOKEN_CACHE_SECONDS"} <= zero_ok
    assert not {"REALTIME_MAX_FRAME_BYTES", "REALTIME_HEARTBEAT_INTERVAL", "API_REPORT_WAIT"} & zero_ok


def test_good_values_of_every_variable_pass_manage_py_check(tmp_path):
    good = {name: value for name, value in GOOD.items() if value is not None}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "ERROR"], clean_env(tmp_path, **good))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "System check identified" in result.stdout


def test_good_values_are_read_as_written(load, tmp_path):
    s = load(**{name: value for name, value in GOOD.items() if value is not None},
             DATABASE_URL="postgresql://fleet@db.internal/fleet")
    assert s["DEBUG"] is False and s["SECURE_SSL_REDIRECT"] is True and s["SECURE_HSTS_SECONDS"] == 300
    assert s["ALLOWED_HOSTS"] == ["dash.example.com", ".example.net"]
    assert s["TRUSTED_PROXIES"] == ["127.0.0.1", "::1", "10.0.0.0/8"]
    assert s["STATIC_ROOT"] == Path("/srv/dashboard/static")
    assert s["DATABASES"]["default"]["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 5, "timeout": 2.5}
    assert s["CACHES"]["default"]["KEY_PREFIX"] == s["CHANNEL_LAYERS"]["default"]["CONFIG"]["prefix"] == "fleet-staging"
    assert (s["REQUEST_THREADS"], s["REQUEST_OVERFLOW"], s["TASK_RETENTION_DAYS"], s["API_REPORT_WAIT"]) == (0, 0, 0, 0.25)
    assert (s["REALTIME_MAX_STREAM_ROWS"], s["REALTIME_MAX_USER_OUTBOX_BYTES"]) == (1, 1)
    assert s["REALTIME_MIN_SUBSCRIBE_INTERVAL"] == 0.0 and s["REALTIME_HEARTBEAT_TIMEOUT"] == 7.5
    assert s["REALTIME_LOG_LEVEL"] == "WARNING" and s["LOGGING"]["loggers"]["realtime"]["level"] == "WARNING"
    assert s["LOGGING"]["loggers"]["django.request"]["level"] == "DEBUG"
    assert s["AXES_FAILURE_LIMIT"] == 1 and s["AXES_COOLOFF_TIME"] is None
    assert s["AGENT_OFFLINE_TASK_POLICY"] == "fail" and s["AGENT_OFFLINE_AFTER"] == 0.5
    assert s["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"] == {"agent": "10/second", "operator": "3/min"}


def test_the_new_settings_have_their_documented_defaults(load):
    s = load()
    assert s["REALTIME_MAX_STREAM_ROWS"] == 50000 and s["TASK_RETENTION_DAYS"] == 30
    assert s["REALTIME_MAX_USER_OUTBOX_BYTES"] == 134217728 and s["REQUEST_OVERFLOW"] == 64
    assert s["API_REPORT_WAIT"] == 10.0


def test_every_realtime_setting_comes_from_realtime_conf_with_its_default(load):
    from realtime import conf

    s = load()
    for name, rule in conf.SETTINGS.items():
        assert s[name] == rule.default, name
    defaults = documented_defaults()
    for name, rule in conf.SETTINGS.items():
        assert site_env.show(rule.default) == defaults[name], name


# Kinds of value ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, parsed", [("600/min", "600/min"), ("600/m", "600/m"), ("10/second", "10/second"),
                                           ("10/s", "10/s"), ("5/sec", "5/sec"), ("100/hour", "100/hour"),
                                           ("100/h", "100/h"), ("1000/day", "1000/day"), ("1000/days", "1000/day"),
                                           (" 20 / Minute ", "20/minute")])
def test_throttle_rates_take_drf_forms(load, value, parsed):
    rates = load(API_AGENT_RATE=value)["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]
    assert rates["agent"] == parsed
    from rest_framework.throttling import SimpleRateThrottle

    number, seconds = SimpleRateThrottle.parse_rate(None, parsed)
    assert number == int(value.split("/")[0]) and seconds in (1, 60, 3600, 86400)


@pytest.mark.parametrize("value", ["lots", "600", "0/min", "-1/min", "600/fortnight", "600/", "/min", "6.5/min", "600/min/2"])
def test_a_throttle_rate_drf_cannot_use_is_refused_when_the_settings_load(load, value):
    with pytest.raises(ImproperlyConfigured) as info:
        load(API_OPERATOR_RATE=value)
    assert str(info.value).startswith(f"API_OPERATOR_RATE={value!r}: expected a rate")
    assert str(info.value).endswith("Unset, it defaults to 300/min.")


@pytest.mark.parametrize("value", ["64k", "0", "-1", "1.5", ""])
def test_frame_bytes_is_a_whole_number_of_at_least_one(load, value):
    if not value:
        assert load(REALTIME_MAX_FRAME_BYTES=value)["REALTIME_MAX_FRAME_BYTES"] == 65536  # blank: the default
        return
    with pytest.raises(ImproperlyConfigured) as info:
        load(REALTIME_MAX_FRAME_BYTES=value)
    assert str(info.value) == (f"REALTIME_MAX_FRAME_BYTES={value!r}: expected a whole number of bytes, at least 1. "
                               "Unset, it defaults to 65536.")


@pytest.mark.parametrize("value", ["abc", "-5", "1.5"])
def test_conn_max_age_is_whole_seconds_zero_allowed(load, value):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_CONN_MAX_AGE='.*': expected a whole number of seconds, 0 or more"):
        load(DATABASE_CONN_MAX_AGE=value)
    assert load(DATABASE_CONN_MAX_AGE="0")["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


def test_the_old_name_of_max_send_bytes_is_refused_with_the_new_one(load):
    with pytest.raises(ImproperlyConfigured, match="REALTIME_SYNC_PART_BYTES was renamed: set REALTIME_MAX_SEND_BYTES"):
        load(REALTIME_SYNC_PART_BYTES="262144")


@pytest.mark.parametrize("name, value, words", [
    ("DATABASE_URL", "sqlite://", "a database name (PostgreSQL) or a file path (SQLite) is missing"),
    ("DATABASE_URL", "db.internal/dashboard", "the scheme must be one of sqlite, postgres, postgresql, pgsql"),
    ("REDIS_URL", "redis://:6379/0", "the host is missing"),
    ("REDIS_URL", "redis://cache:port/0", "expected a Redis URL"),
    ("DJANGO_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal", "'proxy.internal' is not an IP address or network"),
    ("DJANGO_CSRF_TRUSTED_ORIGINS", "https://ok.example.com,dash.example.com", "'dash.example.com' is not an origin"),
])
def test_urls_and_lists_name_the_part_that_is_wrong(load, name, value, words):
    with pytest.raises(ImproperlyConfigured) as info:
        load(**{name: value})
    assert str(info.value).startswith(f"{name}={value!r}: expected ") and words in str(info.value)


def test_a_realtime_setting_set_in_python_is_checked_by_manage_py_check(settings):
    from django.core.checks import run_checks

    settings.REALTIME_MAX_FRAME_BYTES = 0
    settings.REALTIME_HEARTBEAT_INTERVAL = "soon"
    settings.REALTIME_PERIODIC_JOBS = [("tasks.liveness.run_due_sweep", 0)]
    errors = [e for e in run_checks() if e.id == "realtime.E100"]
    assert sorted(e.msg.split("=")[0] for e in errors) == [
        "REALTIME_HEARTBEAT_INTERVAL", "REALTIME_MAX_FRAME_BYTES", "REALTIME_PERIODIC_JOBS entry ('tasks.liveness.run_due_sweep', 0) is not (dotted path, seconds > 0)."]
    assert "a whole number of bytes, at least 1" in next(e.msg for e in errors if "FRAME" in e.msg)
    settings.REALTIME_MAX_FRAME_BYTES, settings.REALTIME_HEARTBEAT_INTERVAL = 65536, 25.0
    settings.REALTIME_PERIODIC_JOBS = [("tasks.liveness.run_due_sweep", 1.0)]
    assert [e for e in run_checks() if e.id == "realtime.E100"] == []


# What a process does with its settings ---------------------------------------------------------


def test_a_server_with_a_bad_value_does_not_start(tmp_path):
    command = ["-m", "daphne", "-b", "127.0.0.1", "-p", "0", "dashboard_site.asgi:application"]
    result = run(command, clean_env(tmp_path, API_AGENT_RATE="lots"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: API_AGENT_RATE='lots': expected a rate" in result.stderr


def agent_statuses(servers, token):
    """The status of GET /api/agent/me/ on each server in turn."""
    import urllib.error
    import urllib.request

    statuses = []
    for server in servers:
        request = urllib.request.Request(f"{server.http}/api/agent/me/", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    return statuses


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_api_throttle_is_shared_by_every_process_through_redis(daphne, redis_server):
    """docs/api.md: with REDIS_URL the counters are in Redis, so N processes still allow the
    rate once; without it each process counts for itself."""
    from tasks import tokens
    from tasks.models import Agent

    token = tokens.issue(Agent.objects.create(name="throttled"))[1]
    shared = [daphne(REDIS_URL=redis_server.url, API_AGENT_RATE="3/min") for _ in range(2)]
    assert agent_statuses([shared[0], shared[0], shared[1], shared[1]], token) == [200, 200, 200, 429]
    alone = [daphne(API_AGENT_RATE="3/min") for _ in range(2)]
    assert agent_statuses([alone[0], alone[0], alone[1], alone[1]], token) == [200, 200, 200, 200]


# run.py ------------------------------------------------------------------------------------------


@pytest.fixture
def run_py(monkeypatch):
    """run.py's functions, without running it."""
    monkeypatch.delenv("PORT", raising=False)
    return runpy.run_path(str(ROOT / "run.py"), run_name="run_py")


def test_run_py_serves_on_8000_unless_told_another_port(run_py, monkeypatch):
    assert run_py["port_from"]([]) == 8000
    assert run_py["port_from"](["--port", "8001"]) == 8001 and run_py["port_from"](["--port=8002"]) == 8002
    monkeypatch.setenv("PORT", "8003")
    assert run_py["port_from"]([]) == 8003
    assert run_py["port_from"](["--port", "8004"]) == 8004  # the option wins


@pytest.mark.parametrize("args, env, message", [
    (["--port", "http"], {}, "--port 'http' is not a port number: use a whole number from 1 to 65535"),
    (["--port", "70000"], {}, "--port '70000' is not a port number"),
    ([], {"PORT": "0"}, "PORT '0' is not a port number"),
    (["--prot", "8001"], {}, "Unknown arguments: --prot 8001"),
])
def test_run_py_refuses_a_bad_port_before_doing_anything(tmp_path, args, env, message):
    result = run(["run.py", *args], clean_env(tmp_path, **env))
    assert result.returncode != 0 and message in result.stderr
    assert "Installing" not in result.stdout


def test_the_first_migrate_of_a_new_database_prints_nothing_under_run_py(tmp_path):
    """run.py migrates with REALTIME_LOG_LEVEL=WARNING: the stream's first epoch is not news
    (realtime/epochs.py logs that rotation at INFO when the database holds no rows)."""
    result = run(["manage.py", "migrate", "--noinput", "-v", "0"], clean_env(tmp_path, REALTIME_LOG_LEVEL="WARNING"))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""

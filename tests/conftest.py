"""Shared fixtures: services (PostgreSQL, Redis, Chromium), real daphne processes, logins.

A test that needs something this machine lacks is skipped with a message saying what is
missing. With REQUIRE_SERVICES=1 (set by .ci/run) such a skip is a failure instead.
"""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# Hung tests -------------------------------------------------------------------------------------

HUNG_GRACE = 30  # seconds an interrupted run gets to stop (its fixtures stop their servers)
_interrupted = threading.Event()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    """pytest-timeout's thread method, naming the test: past its limit (pyproject.toml's
    `timeout`, or the test's @pytest.mark.timeout) the test's id and every thread's stack are
    printed and the run is interrupted, so fixtures still stop the servers they started; a
    run that has not stopped HUNG_GRACE seconds later is ended."""
    if settings.method != "thread":
        return None  # the plugin's own method
    fired = threading.Event()
    timer = threading.Timer(settings.timeout, _timed_out, (item, settings, fired))
    timer.name, timer.daemon = f"timeout {item.nodeid}", True

    def cancel():
        timer.cancel()
        if not fired.is_set():
            timer.join(5)

    item.cancel_timeout = cancel
    timer.start()
    return True


SLOW_TIMEOUT = 600  # seconds for a test that starts servers or a browser (the default: pyproject.toml)


def pytest_collection_modifyitems(items):
    """Tests that start real servers or a browser get SLOW_TIMEOUT, unless they carry their
    own @pytest.mark.timeout."""
    for item in items:
        slow = any(item.get_closest_marker(name) for name in ("server", "browser")) or \
            {"daphne", "browser", "redis_server"} & set(getattr(item, "fixturenames", ()))
        if slow and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def pytest_keyboard_interrupt(excinfo):
    """The run was interrupted (by a timeout, or by hand): the run is stopping."""
    _interrupted.set()


def _timed_out(item, settings, fired):
    import _thread

    from pytest_timeout import dump_stacks

    fired.set()
    try:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture:
            capture.suspend_global_capture(item)
        terminal = item.config.get_terminal_writer()
        terminal.sep("+", f"Timeout: {item.nodeid} ran longer than {settings.timeout:g} s")
        dump_stacks(terminal)
        terminal.sep("+", f"Timeout: {item.nodeid} (stacks above); interrupting the run")
        terminal.flush()
    finally:
        _thread.interrupt_main()
        if not _interrupted.wait(5):  # asyncio's runner only cancels the test on the first
            _thread.interrupt_main()
        _interrupted.wait(5)
        time.sleep(HUNG_GRACE)
        sys.stderr.write(f"\nTimeout: {item.nodeid} did not stop when interrupted; ending the run\n")
        sys.stderr.flush()
        os._exit(1)


def require(available, what):
    """Skip (or fail under REQUIRE_SERVICES=1) when `what` is not available."""
    if available:
        return
    message = f"needs {what}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host, port, timeout=0.5):
    try:
        socket.create_connection((host, port), timeout).close()
        return True
    except OSError:
        return False


def wait_port(port, proc=None, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open("127.0.0.1", port, 0.2):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def redis_binary():
    exe = shutil.which("redis-server")
    require(exe, "the redis-server binary (apt-get install redis-server)")
    return exe


class RedisServer:
    """A test-owned redis-server on a free port, so fault tests never touch a shared one."""

    def __init__(self, exe):
        self.exe, self.port, self.proc = exe, free_port(), None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert wait_port(self.port, self.proc, 10), "redis-server did not start"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_server(redis_binary):
    server = RedisServer(redis_binary)
    server.start()
    yield server
    server.stop()


def postgres_available():
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url():
    """URL of the shared PostgreSQL server's maintenance database."""
    require(postgres_available(), "PostgreSQL on 127.0.0.1:5432 (user postgres)")
    return "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url_of(settings_dict):
    """A DATABASE_URL that points another process at the database this test uses."""
    engine, name = settings_dict["ENGINE"], settings_dict["NAME"]
    if "sqlite" in engine:
        return f"sqlite:///{name}"
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    return f"postgresql://{auth}{settings_dict.get('HOST') or '127.0.0.1'}:{settings_dict.get('PORT') or 5432}/{name}"


# The ASGI servers the project supports: daphne (manage.py runserver's) and uvicorn.
SERVER_COMMANDS = {
    "daphne": lambda port: [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "dashboard_site.asgi:application"],
    "uvicorn": lambda port: [PYTHON, "-m", "uvicorn", "dashboard_site.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--lifespan", "off", "--no-access-log", "--no-proxy-headers"],
}


class DaphneServer:
    """A real server process (daphne unless `kind` says uvicorn) sharing the test's database."""

    def __init__(self, env, port=None, kind="daphne"):
        self.env, self.port, self.proc, self.kind = env, port or free_port(), None, kind
        self.log_path = Path(tempfile.mkstemp(prefix=f"{kind}-", suffix=".log")[1])

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self):
        return f"ws://127.0.0.1:{self.port}/ws/dashboard/"

    def start(self):
        self.proc = subprocess.Popen(
            SERVER_COMMANDS[self.kind](self.port),
            cwd=ROOT, env=self.env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
        )
        if not wait_port(self.port, self.proc, 40):
            raise RuntimeError(f"{self.kind} did not start:\n{self.log()}")
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def server_env(transactional_db, settings):
    """Environment for a daphne process that shares this test's database."""
    from django.db import connection

    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_of(connection.settings_dict),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        REALTIME_HEARTBEAT_INTERVAL="2",
        REALTIME_HEARTBEAT_TIMEOUT="2",
        # The tests open dozens of dashboards as one user; tests of the limit set their own.
        REALTIME_MAX_SOCKETS_PER_USER="1000",
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture
def daphne(server_env):
    """Factory: daphne(**env_overrides) starts a server; all are stopped after the test."""
    servers = []

    def start(port=None, kind="daphne", **overrides):
        if kind == "uvicorn":
            require(importlib.util.find_spec("uvicorn"), "uvicorn (pip install -e '.[test]')")
        env = dict(server_env, **{k: str(v) for k, v in overrides.items()})
        server = DaphneServer(env, port, kind).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(autouse=True)
def frames_are_checked(monkeypatch):
    """Every frame an in-process consumer sends is checked against the typed vocabulary
    (realtime/events.py `check_frame`); the test fails on the first that does not fit.
    Frames sent by server processes are checked by tests/support/stream.py's clients."""
    from realtime import consumers, registry
    from realtime.events import check_frame

    problems = []
    put = consumers.DashboardConsumer._put

    def checked(self, text):
        keys = [e.key for e in registry.entities()]
        found = check_frame(json.loads(text), keys)
        if found:
            problems.append((text[:300], found))
        return put(self, text)

    monkeypatch.setattr(consumers.DashboardConsumer, "_put", checked)
    yield
    assert not problems, f"frames that do not fit realtime/events.py: {problems[:3]}"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """The default hasher costs ~0.4 s per login on these machines; tests need no security."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


_OPERATOR_PASSWORD_HASH = {}


def operator_password_hash():
    """The staff user's password hashed the way a server process checks it, computed once."""
    if not _OPERATOR_PASSWORD_HASH:
        from django.contrib.auth.hashers import make_password

        _OPERATOR_PASSWORD_HASH["hash"] = make_password("operator-pass-123", hasher="pbkdf2_sha256")
    return _OPERATOR_PASSWORD_HASH["hash"]


@pytest.fixture
def staff_user(django_user_model):
    """A superuser who can also sign in through a daphne process (which uses the real hasher)."""
    user = django_user_model.objects.create_superuser("operator", "op@example.com", None)
    user.password = operator_password_hash()
    user.save(update_fields=["password"])
    return user


def signed_in(client, user):
    """`client` (Django's test client or DRF's) with a session of `user`."""
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(staff_user):
    """A Django test client signed in as the staff user."""
    from django.test import Client

    return signed_in(Client(), staff_user)


@pytest.fixture
def session_cookie(staff_user):
    """A session cookie for the staff user, valid for any process sharing the database."""
    from django.test import Client

    return f"sessionid={signed_in(Client(), staff_user).cookies['sessionid'].value}"


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections(django_db_setup, django_db_blocker):
    """Worker threads and server processes keep PostgreSQL sessions open; end them so the
    test database can be dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

"""Shared plumbing for the benchmarks: ports, servers, databases, Redis, CPU and memory.

Nothing here imports Django: the driver (bench/run.py) is also the load client and stays
lean. Django work happens in subprocesses (bench/dbtool.py) or in the server itself
(bench/bench_asgi.py).

Every resource a benchmark makes is its own and is removed afterwards: a temp SQLite file
or a uniquely named PostgreSQL database, a redis-server on a free port, server processes
started in their own session so they can be stopped by their id.
"""
import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
CLIENT_CORE = "1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TMP = Path(tempfile.gettempdir())
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"

_cleanups = []


def at_cleanup(fn):
    _cleanups.append(fn)
    return fn


def cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as exc:  # cleanup must go on
            print(f"cleanup: {exc}", file=sys.stderr)


# Ports -------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, timeout=0.3):
    try:
        socket.create_connection(("127.0.0.1", port), timeout).close()
        return True
    except OSError:
        return False


def wait_port(port, proc=None, timeout=40.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(port):
            return True
        time.sleep(0.05)
    return False


# Process accounting --------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a whole process (all its threads, living and exited) and of its living
    child processes (granian serves from a worker process), in seconds."""
    total = _own_cpu(pid)
    for child in _children(pid):
        try:
            total += cpu_seconds(child)
        except OSError:  # the child ended meanwhile
            pass
    return total


def _own_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children(pid):
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pin_self(core=CLIENT_CORE):
    try:
        os.sched_setaffinity(0, {int(core)})
    except OSError:
        pass


def raise_nofile(limit=65536):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), max(hard, limit)))
    except (ValueError, OSError):  # no CAP_SYS_RESOURCE here: the hard limit is the ceiling
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Servers -----------------------------------------------------------------------------------

def base_env(db_url=None, redis_url=None, **extra):
    """Environment for a project process: its own database, optional Redis, quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="0",
        DJANGO_SECRET_KEY="bench-secret-key-not-for-production-0123456789abcdef",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        REALTIME_LOG_LEVEL="WARNING",
        REALTIME_MAX_SOCKETS_PER_USER="100000",  # every load client is the same user
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    if db_url:
        env["DATABASE_URL"] = db_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


# The production flags of deploy/systemd/dashboard@.service (docs/operations.md), except the
# handshake margin, which the `connecttimeout` prototype adds.
DAPHNE_FLAGS = ["--ping-interval", "300", "--ping-timeout", "30", "--application-close-timeout", "10",
                "--websocket_timeout", "86400"]


def _daphne_extra():
    patches = os.environ.get("BENCH_PATCHES", "")
    return ["--websocket_connect_timeout", "30"] if ("connecttimeout" in patches or "all" in patches) else []


SERVER_COMMANDS = {
    # The project, wrapped with the bench-only write endpoint (bench/bench_asgi.py).
    "daphne": lambda port: [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *DAPHNE_FLAGS, *_daphne_extra(),
                            "bench.bench_asgi:application"],
    "uvicorn": lambda port: [PYTHON, "-m", "uvicorn", "bench.bench_asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--lifespan", "off", "--log-level", "warning", "--no-access-log"],
    # Measured beside the two supported servers (`--servers granian`, after `pip install granian`);
    # asginl: without the lifespan protocol, which Channels' router does not speak. One worker
    # process (a child of the one started), single-threaded runtime, as one core per process.
    "granian": lambda port: [PYTHON, "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--runtime-mode", "st", "--log-level", "warning", "--no-access-log",
                             "bench.bench_asgi:application"],
    # References.
    "raw": lambda port: [PYTHON, str(BENCH / "reference_raw.py"), "--port", str(port)],
    "tutorial": lambda port: [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.reference_tutorial:application"],
}


class Server:
    """One server process pinned to the server core, with a raised descriptor limit."""

    def __init__(self, kind, env, port=None, core=SERVER_CORE, nofile=65536):
        self.kind, self.env, self.core, self.nofile = kind, env, core, nofile
        self.port = port or free_port()
        self.proc = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".log")[1])
        at_cleanup(self.kill)
        at_cleanup(lambda: self.log_path.unlink(missing_ok=True))

    @property
    def pid(self):
        return self.proc.pid

    @property
    def ws_path(self):
        return "/ws/dashboard/"

    def spawn(self):
        command = shlex.join(["taskset", "-c", self.core, *SERVER_COMMANDS[self.kind](self.port)])
        self.proc = subprocess.Popen(
            ["bash", "-c", f"ulimit -n {self.nofile} 2>/dev/null || ulimit -n $(ulimit -Hn); exec {command}"],
            cwd=ROOT, env=self.env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self, timeout=60):
        self.spawn()
        if not wait_port(self.port, self.proc, timeout):
            raise RuntimeError(f"{self.kind} did not start:\n{self.log()[-3000:]}")
        return self

    async def astart(self, timeout=60):
        """start() without blocking the event loop (the load client keeps running)."""
        self.spawn()
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return self
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.kind} did not start:\n{self.log()[-3000:]}")

    async def aterminate(self, timeout=20):
        """terminate() without blocking the event loop."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.02)
            self.kill()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=20):
        """SIGTERM (the project's hub closes every socket with 1012 first), then wait."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        if self.alive():
            try:  # the whole session: a server's worker processes (granian) go with it
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Redis:
    def __init__(self, core=CLIENT_CORE):
        self.port, self.proc, self.core = free_port(), None, core
        at_cleanup(self.stop)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            ["taskset", "-c", self.core, exe, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if not wait_port(self.port, self.proc, 10):
            raise RuntimeError("redis-server did not start")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# Databases ---------------------------------------------------------------------------------

def dbtool(args, env, timeout=600, core=CLIENT_CORE):
    """Run bench/dbtool.py (a Django script) and return its JSON answer."""
    out = subprocess.run(
        ["taskset", "-c", core, PYTHON, str(BENCH / "dbtool.py"), *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dbtool {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def psql(sql, database="postgres"):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True, capture_output=True, text=True, timeout=1800,  # VACUUM or a copy of a 5,000,000-row template
    )


def postgres_available():
    try:
        psql("SELECT 1")
        return True
    except Exception:
        return False


class DatabaseTemplate:
    """A migrated, seeded database made once per run; each benchmark gets its own copy."""

    def __init__(self, kind, tasks=50, agents=5, name="template"):
        self.kind, self.tasks, self.agents, self.name = kind, tasks, agents, name
        self.count = 0
        self.info = None
        if kind == "sqlite":
            self.template = TMP / f"bench_{RUN_ID}_{name}.sqlite3"
            self.url = f"sqlite:///{self.template}"
        else:
            self.template = f"bench_{RUN_ID}_{name}"
            self.url = f"postgresql://postgres@127.0.0.1:5432/{self.template}"
        at_cleanup(self.drop_template)

    def create(self):
        if self.kind == "postgres":
            psql(f'CREATE DATABASE "{self.template}"')
        self.info = dbtool(["setup", "--tasks", self.tasks, "--agents", self.agents], base_env(self.url))
        return self

    def bulk(self, tasks):
        """Add `tasks` tasks in bulk (the views scenario's large tables)."""
        dbtool(["bulk", "--tasks", tasks], base_env(self.url), timeout=3600)
        if self.kind == "postgres":
            psql("VACUUM ANALYZE", database=self.template)

    def clone(self):
        """A fresh database (same rows, same session cookie) for one benchmark."""
        self.count += 1
        if self.kind == "sqlite":
            path = TMP / f"bench_{RUN_ID}_{self.name}_{self.count}.sqlite3"
            shutil.copyfile(self.template, path)
            db = Database(self.kind, f"sqlite:///{path}", path)
        else:
            name = f"bench_{RUN_ID}_{self.name}_{self.count}"
            psql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            db = Database(self.kind, f"postgresql://postgres@127.0.0.1:5432/{name}", name)
        db.cookie = f"sessionid={self.info['session']}"
        return db

    def drop_template(self):
        drop_database(self.kind, self.template)


class Database:
    def __init__(self, kind, url, handle):
        self.kind, self.url, self.handle = kind, url, handle
        self.cookie = None
        at_cleanup(self.drop)

    def drop(self):
        drop_database(self.kind, self.handle)


def drop_database(kind, handle):
    """Remove a benchmark's database: a SQLite file (with its -wal and -shm) or a PostgreSQL
    database by name; one already gone is no error."""
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{handle}{suffix}").unlink(missing_ok=True)
    else:
        try:
            psql(f'DROP DATABASE IF EXISTS "{handle}" WITH (FORCE)')
        except Exception:
            pass


# HTTP trigger ----------------------------------------------------------------------------

async def http_get(port, path, timeout=600.0):
    """A minimal HTTP/1.0 GET on loopback; returns the decoded JSON body."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head else b"?"
    if status != b"200":
        raise RuntimeError(f"GET {path} answered {head[:200]!r} {body[:500]!r}")
    return json.loads(body)


async def run_tool(args, env, timeout=900.0, core=CLIENT_CORE):
    """bench/dbtool.py from async code (an external writer process)."""
    proc = await asyncio.create_subprocess_exec(
        "taskset", "-c", core, PYTHON, str(BENCH / "dbtool.py"), *map(str, args),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"dbtool {args} failed:\n{err.decode()[-4000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


# Statistics --------------------------------------------------------------------------------

def percentile(values, q):
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary_ms(latencies_s):
    """p50/p90/p99/max of latencies in seconds, reported in milliseconds."""
    if not len(latencies_s):
        return {"n": 0}
    import numpy as np

    a = np.asarray(latencies_s, dtype=float) * 1000.0
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }

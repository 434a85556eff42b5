"""Scenarios: each module has `NAME`, `TITLE`, `async def run(ctx) -> dict` (one run) and
`def summarize(runs) -> dict` (medians over runs, table rows with target/measured/ratio)."""
import asyncio
import contextlib
import sys
import time

from bench.common import (
    DatabaseTemplate, Redis, Server, base_env, http_get, postgres_available, run_tool,
)

# Configurations of the project measured side by side.
EMBEDDED = "embedded"  # SQLite + in-process layer; writes inside the server (agent API)
SCALEOUT = "pg-redis"  # PostgreSQL + channels-redis; writes from another process


class Context:
    def __init__(self, quick=False, configs=(EMBEDDED, SCALEOUT), servers=("daphne", "uvicorn"), log=print):
        self.quick = quick
        self.configs = list(configs)
        self.servers = list(servers)
        self.log = log
        self._templates = {}
        if SCALEOUT in self.configs and not postgres_available():
            log("PostgreSQL on 127.0.0.1:5432 is not available: skipping the pg-redis configuration")
            self.configs.remove(SCALEOUT)

    def size(self, full, quick):
        return quick if self.quick else full

    def template(self, kind):
        if kind not in self._templates:
            t0 = time.monotonic()
            self._templates[kind] = DatabaseTemplate(kind).create()
            self.log(f"  [{kind} template database ready in {time.monotonic() - t0:.1f}s]")
        return self._templates[kind]

    def big_template(self, kind, tasks):
        """A template with `tasks` more tasks, inserted in bulk (bench/djwork.py bulk_tasks)."""
        key = (kind, tasks)
        if key not in self._templates:
            t0 = time.monotonic()
            template = DatabaseTemplate(kind, name=f"t{tasks}").create()
            template.bulk(tasks)
            self._templates[key] = template
            self.log(f"  [{kind} template with {tasks:,} more tasks ready in {time.monotonic() - t0:.1f}s]")
        return self._templates[key]


class Project:
    """The project under test in one configuration: its database, maybe Redis, a server."""

    def __init__(self, ctx, config, kind="daphne", tasks=None, **env):
        self.ctx, self.config, self.kind, self.extra_env = ctx, config, kind, env
        kind_of_db = "sqlite" if config == EMBEDDED else "postgres"
        self.db = (ctx.big_template(kind_of_db, tasks) if tasks else ctx.template(kind_of_db)).clone()
        self.redis = Redis().start() if config == SCALEOUT else None
        self.server = None

    @property
    def env(self):
        return base_env(self.db.url, self.redis.url if self.redis else None, **self.extra_env)

    @property
    def writer_env(self):
        """Environment of an external writer process (scale-out: publishes through Redis)."""
        from bench.experiments import database_url

        return base_env(database_url(self.db.url), self.redis.url if self.redis else None)

    @property
    def cookie(self):
        return self.db.cookie

    def start(self, port=None):
        self.server = Server(self.kind, self.env, port=port or (self.server.port if self.server else None)).start()
        return self.server

    async def astart(self, port=None):
        self.server = Server(self.kind, self.env, port=port or (self.server.port if self.server else None))
        return await self.server.astart()

    async def write(self, n, rate=0.0, rows=50, external=None, timeout=900.0, threads=1, newest=False):
        """n sequenced changes; in the server for the embedded default (`threads` request
        threads), else from a writer process. `newest`: to the newest tasks, else the oldest.
        Returns {"stamps": [[seq, commit time], ...], "start", "elapsed"}."""
        if external is None:
            external = self.config == SCALEOUT
        if external:
            return await run_tool(["write", "--n", n, "--rate", rate, "--rows", rows, *(["--newest"] if newest else [])],
                                  self.writer_env, timeout)
        return await http_get(self.server.port, f"/bench/write?n={n}&rate={rate}&rows={rows}&threads={threads}"
                                                f"&newest={int(newest)}", timeout)

    async def state(self):
        return await http_get(self.server.port, "/bench/state")

    def stop(self):
        if self.server is not None:
            self.server.kill()
        if self.redis is not None:
            self.redis.stop()
        self.db.drop()


class Reference:
    """A reference server (raw floor or tutorial design)."""

    def __init__(self, ctx, kind):
        self.ctx, self.kind = ctx, kind
        self.server = None
        self.cookie = ""

    def start(self):
        self.server = Server(self.kind, base_env()).start()
        return self.server

    async def write(self, n, rate=0.0, rows=50, external=None, timeout=900.0):
        return await http_get(self.server.port, f"/bench/write?n={n}&rate={rate}&rows={rows}", timeout)

    def stop(self):
        if self.server is not None:
            self.server.kill()


@contextlib.asynccontextmanager
async def cpu_sampler(pid, interval=1.0):
    """Samples a process's CPU (fraction of one core) every `interval` seconds."""
    from bench.common import cpu_seconds

    samples = []

    async def loop():
        last_t, last_c = time.monotonic(), cpu_seconds(pid)
        while True:
            await asyncio.sleep(interval)
            try:
                t, c = time.monotonic(), cpu_seconds(pid)
            except OSError:
                return
            samples.append((t, (c - last_c) / (t - last_t)))
            last_t, last_c = t, c

    task = asyncio.ensure_future(loop())
    try:
        yield samples
    finally:
        task.cancel()


def warn(message):
    print(f"  ! {message}", file=sys.stderr)

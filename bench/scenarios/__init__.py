"""Scenarios: each module has `NAME`, `TITLE`, `async def run(ctx) -> dict` (one run) and
`def summarize(runs) -> dict` (medians over runs, table rows with target/measured/ratio).

What they share lives here: the project or a reference under test (`Project`, `Reference`:
context managers that stop what they started, with `fleet()` to connect load clients;
`serving()`: a project and its fleet, ready), a run
over variants (`run_each`, `per_config`), the server's CPU (`cpu_sampler`, `idle_cpu`,
`cpu_above_idle`), and the summaries (`summarizer`, `median_of`, `row`, `summary`)."""
import asyncio
import contextlib
import sys
import time

from bench.common import (
    DatabaseTemplate, Redis, Server, base_env, cpu_seconds, http_get, median, postgres_available, run_tool,
)
from bench.loadclient import Fleet

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


class Target:
    """A server under test; `with target:` stops whatever it started."""

    server = None
    cookie = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    async def fleet(self, n, mode="stamp", concurrency=100, label=None, **options):
        """`n` load clients (bench/loadclient.py) of the running server, connected and synced;
        with a `label`, a warning names the clients that did not sync."""
        fleet = Fleet(self.server.port, self.cookie, mode, **options)
        fleet.connect_s = await fleet.connect(n, concurrency=concurrency)
        if label is not None and fleet.synced_clients() < n:
            warn(f"{label}: only {fleet.synced_clients()}/{n} clients synced")
        return fleet


class Project(Target):
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


@contextlib.asynccontextmanager
async def serving(ctx, config, clients, mode="stamp", kind="daphne", env=None, **fleet_options):
    """The project in `config` on a `kind` server (with `env`), and a fleet of `clients` load
    clients connected and synced: (project, fleet); the fleet is closed and the project
    stopped afterwards."""
    with Project(ctx, config, kind, **(env or {})) as project:
        project.start()
        fleet = await project.fleet(clients, mode, **fleet_options)
        try:
            yield project, fleet
        finally:
            await fleet.close()


class Reference(Target):
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


async def idle_cpu(pid, settle=1.0, window=2.0):
    """A process's CPU rate at rest (fraction of one core): after `settle` s, over `window` s."""
    await asyncio.sleep(settle)
    t0, c0 = time.monotonic(), cpu_seconds(pid)
    await asyncio.sleep(window)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def cpu_above_idle(pid, idle, work):
    """Await `work`; returns (its result, the CPU seconds the process spent meanwhile beyond its
    `idle` rate, the moment it ended)."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    result = await work
    t1, c1 = time.monotonic(), cpu_seconds(pid)
    return result, max(0.0, (c1 - c0) - idle * (t1 - t0)), t1


# Runs and summaries ------------------------------------------------------------------------------


def per_config(ctx, server="daphne"):
    """(label, config) for every configuration measured, on one server."""
    return [(f"project/{server}/{config}", config) for config in ctx.configs]


async def run_each(ctx, variants, measure, describe):
    """One run of a scenario: `measure(ctx, *args)` for each `(label, *args)` of `variants`,
    logged before and with `describe(result)` after. Returns {label: result}."""
    results = {}
    for label, *args in variants:
        ctx.log(f"  {label} ...")
        results[label] = result = await measure(ctx, *args)
        ctx.log(f"    {describe(result)}")
    return results


def each_config(measure, describe):
    """A scenario's `run(ctx)` that measures every configuration on daphne:
    `measure(ctx, config)`, logged with `describe(result)`."""
    async def run(ctx):
        return await run_each(ctx, per_config(ctx), measure, describe)

    return run


def summarizer(summarize_variant):
    """A scenario's `summarize(runs)` from `summarize_variant(label, its results over the
    runs)`, which returns the variant's entry and its table rows."""
    def summarize(runs):
        per, rows = {}, []
        for label, results in over_runs(runs).items():
            per[label], variant_rows = summarize_variant(label, results)
            rows += variant_rows
        return summary(per, rows)

    return summarize


def median_of(results, *path):
    """The median over runs of the value at `path` in each result (where it is missing, that
    run is left out)."""
    values = []
    for value in results:
        for key in path:
            value = value.get(key) if value is not None else None
        values.append(value)
    return median(values)


def over_runs(runs):
    """{label: its results over the runs}, for the medians of a summary."""
    return {label: [run[label] for run in runs if label in run] for label in runs[0]}


def row(scenario, variant, target, measured, ratio, passed, **more):
    """One row of the results table (bench/report.py)."""
    return {"scenario": scenario, "variant": variant, "target": target, "measured": measured, "ratio": ratio,
            "pass": passed, **more}


def summary(per, rows):
    return {"per_variant": per, "rows": rows}


def warn(message):
    print(f"  ! {message}", file=sys.stderr)

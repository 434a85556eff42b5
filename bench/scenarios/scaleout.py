"""Scale-out across processes: the shipped nginx site (deploy/nginx/dashboard.conf, TLS) in
front of 1, then 2, daphne processes on PostgreSQL + Redis, on this 2-core machine.

Per process count, on one database and one redis-server:
- the agents' API: wrk (16 connections, https through nginx) sends progress reports for 15 s
  after a 3 s warm-up;
- fan-out: 600 dashboards on the page's view connect through nginx (its `least_conn` spreads
  them), 20 changes paced at 2/s from an external writer: p99 commit-to-arrival; then a burst
  of 100 changes as fast as the writer can: time until every dashboard has all of them;
- a storm: 1,000 fresh dashboards open at once (200 handshakes in flight): time until every
  one has its sync.

Each measure also records the server processes' CPU (utime + stime, all of them), so the
report gives two efficiencies: by rate (rate with 2 / 2x rate with 1; the issue's measure),
and by CPU (work per server CPU-second with 2 / with 1), which says what the second process
itself costs whatever the machine.

The layout, and what it means for the numbers: with 1 process, daphne has core 0 and the load
(wrk or the load client, nginx, the writer) has core 1. With 2 processes, the second daphne is
on core 1 beside the load, so it gets what the load leaves over: the rate efficiency on this
machine is a floor. On two hosts, or a bigger one, each process would have a core of its own.
"""
import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path

from bench.common import CLIENT_CORE, Server, cpu_seconds, dbtool, summary_ms
from bench.loadclient import Fleet
from bench.scenarios import SCALEOUT, Project, median_of, row, summary, warn
from bench.scenarios.agentapi import wrk
from bench.scenarios.views import DEFAULT_VIEW

NAME = "scaleout"
TITLE = "Scale-out: 1 and 2 daphne processes behind the shipped nginx site"
TARGET_EFFICIENCY = 0.8
CONNECTIONS = 16
QUIET = {"REALTIME_HEARTBEAT_INTERVAL": 600, "REALTIME_HEARTBEAT_TIMEOUT": 60, "API_AGENT_RATE": "10000000/min"}


def pin(pid, core):
    """taskset a running process (nginx: its master and workers) to `core`."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
    for p in pids:
        os.system(f"taskset -pc {core} {p} >/dev/null 2>&1")


class Fronted:
    """`processes` daphne processes on one project's database and Redis, behind nginx."""

    def __init__(self, ctx, processes):
        from tests.support.nginx import Nginx

        self.project = Project(ctx, SCALEOUT, "daphne", **QUIET)
        self.folder = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        (self.folder / "static").mkdir()
        self.servers = [Server("daphne", self.project.env, core=str(i % 2)) for i in range(processes)]
        self.nginx = Nginx(self.folder, [s.port for s in self.servers], self.folder / "static")

    def __enter__(self):
        for server in self.servers:
            server.start()
        self.nginx.start()
        pin(self.nginx.proc.pid, CLIENT_CORE)
        return self

    def __exit__(self, *exc):
        if self.nginx.proc is not None:
            self.nginx.proc.terminate()
            self.nginx.proc.wait(10)
        for server in self.servers:
            server.kill()
        self.project.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def port(self):
        return self.nginx.https_port

    def cpu(self):
        return sum(cpu_seconds(s.pid) for s in self.servers)

    def fleet(self):
        context = ssl.create_default_context(cafile=str(self.nginx.cert[2]))
        return Fleet(self.port, self.project.cookie, "stamp", view=DEFAULT_VIEW, ssl=context)




async def api(front, ctx):
    answer = dbtool(["agents", "--count", CONNECTIONS], front.project.writer_env)
    pairs = Path(tempfile.mkstemp(prefix="bench-agents-", suffix=".txt")[1])
    try:
        pairs.write_text("".join(f"{token} {task}\n" for token, task in answer["pairs"]))
        await wrk(front.port, pairs, 3, scheme="https", connections=CONNECTIONS)
        c0 = front.cpu()
        result = await wrk(front.port, pairs, ctx.size(15, 5), scheme="https", connections=CONNECTIONS)
        result["cpu_s"] = front.cpu() - c0
    finally:
        pairs.unlink(missing_ok=True)
    if result["failed"] or result["socket_errors"]:
        warn(f"scaleout api: {result['failed']} non-200 answers, {result['socket_errors']} socket errors")
    result["per_cpu_s"] = result["ok"] / result["cpu_s"] if result["cpu_s"] else None
    return result


async def fanout(front, ctx):
    project, clients = front.project, ctx.size(600, 200)
    fleet = front.fleet()
    fleet.connect_s = await fleet.connect(clients, concurrency=100)
    synced = fleet.synced_clients()
    if synced < clients:
        warn(f"scaleout fanout: only {synced}/{clients} clients synced")
    await project.write(3, rate=10, newest=True)
    await fleet.wait_progress(lambda: fleet.events_received, 3 * synced, timeout=20)
    fleet.clear_frames()
    answer = await project.write(20, rate=2, newest=True)
    await fleet.wait_progress(lambda: fleet.events_received, 20 * synced, timeout=40)
    latencies, missing = fleet.stamp_latencies(answer["stamps"])
    result = {"clients": synced, "latency": {**summary_ms(latencies), "missing": int(missing)}}
    fleet.clear_frames()
    c0 = front.cpu()
    answer = await project.write(100, rate=0, newest=True)
    done = await fleet.wait_progress(lambda: fleet.events_received, 100 * synced, timeout=120)
    last = max((c.frames[-1][0] for c in fleet.clients if c.frames), default=time.monotonic())
    result["burst"] = {"drain_s": last - answer["stamps"][0][1], "deliveries": fleet.events_received,
                       "cpu_s": front.cpu() - c0, "complete": bool(done)}
    result["burst"]["per_cpu_s"] = result["burst"]["deliveries"] / result["burst"]["cpu_s"]
    await fleet.close()
    return result


async def storm(front, ctx):
    clients = ctx.size(1000, 300)
    fleet = front.fleet()
    c0 = front.cpu()
    seconds = await fleet.connect(clients, concurrency=200)
    cpu = front.cpu() - c0
    synced = fleet.synced_clients()
    await fleet.close()
    return {"clients": clients, "synced": synced, "seconds": seconds, "rate": synced / seconds,
            "cpu_s": cpu, "per_cpu_s": synced / cpu if cpu else None}


async def measure(ctx, processes):
    with Fronted(ctx, processes) as front:
        result = {"processes": processes, "api": await api(front, ctx)}
        result["fanout"] = await fanout(front, ctx)
        result["storm"] = await storm(front, ctx)
    return result


def describe(r):
    a, f, s = r["api"], r["fanout"], r["storm"]
    return (f"api {a['rate']:.0f}/s p99 {a['p99_ms']:.0f} ms ({a['per_cpu_s']:.0f}/cpu-s); "
            f"fan-out p99 {f['latency']['p99_ms']:.0f} ms, burst drained in {f['burst']['drain_s']:.2f} s; "
            f"storm {s['synced']}/{s['clients']} in {s['seconds']:.1f} s ({s['per_cpu_s']:.0f}/cpu-s)")


async def run(ctx):
    if SCALEOUT not in ctx.configs:
        warn("scaleout needs PostgreSQL and Redis: skipped")
        return {}
    if not shutil.which("wrk") or not shutil.which("nginx"):
        warn("scaleout needs wrk and nginx (apt-get install wrk nginx): skipped")
        return {}
    results = {}
    for processes in (1, 2):
        label = f"{processes} process{'es' if processes > 1 else ''}"
        ctx.log(f"  {label} ...")
        results[label] = await measure(ctx, processes)
        ctx.log(f"  {label}: {describe(results[label])}")
    return results


def summarize(runs):
    runs = [r for r in runs if r]
    if not runs:
        return summary({}, [])
    per = {}
    for label in runs[0]:
        rs = [r[label] for r in runs]
        per[label] = {
            "api_rate": median_of(rs, "api", "rate"), "api_p99_ms": median_of(rs, "api", "p99_ms"),
            "api_per_cpu_s": median_of(rs, "api", "per_cpu_s"),
            "fanout_p99_ms": median_of(rs, "fanout", "latency", "p99_ms"),
            "fanout_drain_s": median_of(rs, "fanout", "burst", "drain_s"),
            "fanout_per_cpu_s": median_of(rs, "fanout", "burst", "per_cpu_s"),
            "storm_rate": median_of(rs, "storm", "rate"), "storm_s": median_of(rs, "storm", "seconds"),
            "storm_per_cpu_s": median_of(rs, "storm", "per_cpu_s"),
            "missing": sum(r["fanout"]["latency"]["missing"] for r in rs),
            "failed": sum(r["api"]["failed"] + r["api"]["socket_errors"] for r in rs),
            "runs": len(rs),
        }
    one, two = per.get("1 process"), per.get("2 processes")
    rows = []
    if one and two:
        for what, rate, per_cpu, shown in (
            ("agent progress reports through nginx", "api_rate", "api_per_cpu_s",
             lambda s: f"{s['api_rate']:.0f}/s (p99 {s['api_p99_ms']:.0f} ms)"),
            ("a burst of 100 changes to 600 dashboards", "fanout_drain_s", "fanout_per_cpu_s",
             lambda s: f"drained in {s['fanout_drain_s']:.2f} s (p99 of paced changes {s['fanout_p99_ms']:.0f} ms)"),
            ("1,000 fresh dashboards at once", "storm_rate", "storm_per_cpu_s",
             lambda s: f"{s['storm_rate']:.0f} synced/s"),
        ):
            # A drain time is better smaller: its rate is its inverse.
            r1, r2 = (1 / one[rate], 1 / two[rate]) if rate.endswith("_s") else (one[rate], two[rate])
            efficiency = r2 / (2 * r1)
            by_cpu = two[per_cpu] / one[per_cpu] if one[per_cpu] else float("nan")
            rows.append(row(f"scale-out: {what}", "2 vs 1 process", f"rate efficiency >= {TARGET_EFFICIENCY}",
                            f"1: {shown(one)}; 2: {shown(two)}; by rate {efficiency:.2f}, by CPU {by_cpu:.2f}",
                            efficiency, efficiency >= TARGET_EFFICIENCY, ratio2=by_cpu))
    return summary(per, rows)

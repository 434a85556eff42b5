"""Agents' progress reports through the HTTP API, driven by wrk against a real server.

8 agents, each with a token and a running task; wrk (1 thread on the client core, 8
connections) sends `PATCH /api/agent/tasks/<id>/ {"progress": n}` for 15 s after a 3 s warm-up.
Production settings (DEBUG off). The per-agent rate limit is lifted (API_AGENT_RATE) so the
server, not the throttle, is measured: at the default 600/min, 8 agents could send 80/s.

The reference beside it, in the same run: the same server with the request path as it was
before (BENCH_REQUEST_PATH=before, see bench/bench_asgi.py): Django's thread (and database
connection) per request with its three crossings, WhiteNoise's synchronous middleware in
place of dashboard_site/static_files.py, Django's stock SQLite backend in place of
dashboard_site/sqlite/, a Redis connection per request for the rate limit, and every report
in a transaction of its own (no tasks/report_batch.py).
"""
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from bench.common import BENCH, CLIENT_CORE, dbtool
from bench.scenarios import Project, median_of, row, run_each, summarizer, warn

NAME = "agentapi"
TITLE = "Agent progress reports through the HTTP API (wrk)"
TARGET_RATE, TARGET_P99_MS = 500, 100
CONNECTIONS = int(__import__("os").environ.get("BENCH_API_CONNECTIONS", "8"))


async def wrk(port, pairs_file, seconds, scheme="http", connections=CONNECTIONS):
    """bench/wrk/progress.lua against 127.0.0.1:`port` for `seconds`, on the client core."""
    proc = await asyncio.create_subprocess_exec(
        "taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(BENCH / "wrk" / "progress.lua"), f"{scheme}://127.0.0.1:{port}", "--", str(pairs_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    return parse_wrk(out, err)


def parse_wrk(out, err):
    """bench/wrk/progress.lua's result line, with the rate of 200 answers per second."""
    for line in out.decode().splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            result["rate"] = result["ok"] / result["seconds"]
            return result
    raise RuntimeError(f"wrk printed no result: {out.decode()[-2000:]} {err.decode()[-2000:]}")


async def measure(ctx, config, server_kind, reference):
    extra = {"API_AGENT_RATE": "10000000/min"}
    if reference:
        extra.update(BENCH_REQUEST_PATH="before")
    with Project(ctx, config, server_kind, **extra) as project:
        answer = dbtool(["agents", "--count", CONNECTIONS], project.writer_env)
        pairs = Path(tempfile.mkstemp(prefix="bench-agents-", suffix=".txt")[1])
        pairs.write_text("".join(f"{token} {task}\n" for token, task in answer["pairs"]))
        server = project.start()
        await wrk(server.port, pairs, 3)  # warm-up: connections, caches, the first queries
        result = await wrk(server.port, pairs, ctx.size(15, 5))
        pairs.unlink(missing_ok=True)
    if result["failed"] or result["socket_errors"]:
        warn(f"{'reference: before' if reference else 'project'}/{server_kind}/{config}: "
             f"{result['failed']} non-200 answers, {result['socket_errors']} socket errors")
    return result


def describe(r):
    return f"{r['rate']:.0f} reports/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, failed {r['failed']}"


async def run(ctx):
    if not shutil.which("wrk"):
        warn("wrk is not installed (apt-get install wrk): skipping agentapi")
        return {}
    variants = [(f"{'reference: before' if reference else 'project'}/{server_kind}/{config}", config, server_kind, reference)
                for config in ctx.configs for server_kind in ctx.servers for reference in (True, False)]
    return await run_each(ctx, variants, measure, describe)


def summarize(runs):
    def summarize_variant(label, rs):
        rate, p99 = median_of(rs, "rate"), median_of(rs, "p99_ms")
        failed = sum(r["failed"] + r["socket_errors"] for r in rs)
        entry = {"rate": rate, "p50_ms": median_of(rs, "p50_ms"), "p99_ms": p99, "failed": failed}
        if not label.startswith("project/"):
            return entry, []
        ref = runs[0].get(label.replace("project/", "reference: before/", 1))
        return entry, [row(
            "agent progress reports, 8 connections", label, f">= {TARGET_RATE}/s, p99 < {TARGET_P99_MS} ms",
            f"{rate:.0f}/s, p99 {p99:.0f} ms, failed {failed}"
            + (f" (reference {ref['rate']:.0f}/s, p99 {ref['p99_ms']:.0f} ms)" if ref else ""),
            rate / TARGET_RATE, rate >= TARGET_RATE and p99 < TARGET_P99_MS and not failed)]

    return summarizer(summarize_variant)(runs)

"""A hostile viewer beside 30 dashboards: their latency with and without it, in one run.

One server (daphne) per configuration, 30 stamp-mode dashboards. First a quiet phase: N
changes at 20/s, latency = arrival minus commit. Then the same with bench/hostile.py running
in its own process: 20 sockets of the same user flooding `subscribe` with `since: 0` and
reconnecting whenever closed (the per-user limit is 40 here, so 10 get in at a time and the
rest are closed with 4030), plus a 200 KB frame every second (1009). The bystanders must
miss nothing; the ratio of their p99s is the cost of the hostile viewer.
"""
import asyncio
import json

from bench.common import CLIENT_CORE, PYTHON, ROOT, summary_ms
from bench.scenarios import each_config, median_of, row, serving, summarizer, warn

NAME = "hostile"
TITLE = "A hostile viewer beside 30 dashboards"
RATE = 20.0


async def phase(project, fleet, n, hostile=None):
    fleet.clear_frames()
    answer = await project.write(n, rate=RATE)
    await fleet.wait_progress(lambda: fleet.events_received, n * len(fleet.clients), timeout=n / RATE + 30)
    latencies, missing = fleet.stamp_latencies(answer["stamps"])
    return {**summary_ms(latencies), "missing": int(missing)}


async def measure(ctx, config):
    n = ctx.size(300, 100)
    result = {"config": config, "changes": n}
    async with serving(ctx, config, 30, concurrency=30, env={"REALTIME_MAX_SOCKETS_PER_USER": 40}) as (project, fleet):
        server = project.server
        await project.write(3, rate=10)
        await fleet.wait_progress(lambda: fleet.events_received, 90, timeout=20)
        result["quiet"] = await phase(project, fleet, n)
        seconds = n / RATE + 5
        flood = await asyncio.create_subprocess_exec(
            "taskset", "-c", CLIENT_CORE, PYTHON, "-m", "bench.hostile", "--port", str(server.port),
            "--cookie", project.cookie, "--seconds", str(seconds), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        await asyncio.sleep(2)  # let the flood reach full strength
        result["hostile"] = await phase(project, fleet, n)
        out, _ = await asyncio.wait_for(flood.communicate(), seconds + 30)
        result["hostile_closes"] = json.loads(out.decode() or "{}")
        result["bystanders_closed"] = sorted({code for c in fleet.clients for code in c.close_codes})
        result["p99_ratio"] = result["hostile"]["p99_ms"] / result["quiet"]["p99_ms"]
    if result["quiet"]["missing"] or result["hostile"]["missing"] or result["bystanders_closed"]:
        warn(f"project/daphne/{config}: bystanders missed {result['hostile']['missing']} or were closed "
             f"{result['bystanders_closed']}")
    return result


def describe(r):
    return (f"quiet p50 {r['quiet']['p50_ms']:.1f} / p99 {r['quiet']['p99_ms']:.1f} ms; "
            f"hostile p50 {r['hostile']['p50_ms']:.1f} / p99 {r['hostile']['p99_ms']:.1f} ms "
            f"({r['p99_ratio']:.2f}x); hostile closes {r['hostile_closes']}")


run = each_config(measure, describe)


def summarize_variant(label, rs):
    entry = {f"{phase}_{q}_ms": median_of(rs, phase, f"{q}_ms") for phase in ("quiet", "hostile") for q in ("p99", "p50")}
    missing = sum(r["hostile"]["missing"] + r["quiet"]["missing"] for r in rs)
    closed = sorted({c for r in rs for c in r["bystanders_closed"]})
    entry.update(p99_ratio=median_of(rs, "p99_ratio"), missing=missing, bystanders_closed=closed,
                 hostile_closes=rs[-1]["hostile_closes"])
    return entry, [row(
        "30 dashboards beside a hostile viewer", label, "bystanders miss nothing, none closed; p99 beside the quiet run",
        f"p99 {entry['hostile_p99_ms']:.0f} ms vs {entry['quiet_p99_ms']:.0f} ms quiet, "
        f"missing {missing}, closed {closed or 'none'}",
        entry["p99_ratio"], missing == 0 and not closed)]


summarize = summarizer(summarize_variant)

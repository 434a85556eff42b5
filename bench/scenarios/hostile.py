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

from bench.common import CLIENT_CORE, PYTHON, ROOT, median, summary_ms
from bench.loadclient import Fleet
from bench.scenarios import Project, warn

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
    project = Project(ctx, config, "daphne", REALTIME_MAX_SOCKETS_PER_USER=40)
    result = {"config": config, "changes": n}
    try:
        server = project.start()
        fleet = Fleet(server.port, project.cookie, "stamp")
        await fleet.connect(30, concurrency=30)
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
        await fleet.close()
    finally:
        project.stop()
    return result


async def run(ctx):
    results = {}
    for config in ctx.configs:
        label = f"project/daphne/{config}"
        ctx.log(f"  {label} ...")
        r = await measure(ctx, config)
        if r["quiet"]["missing"] or r["hostile"]["missing"] or r["bystanders_closed"]:
            warn(f"{label}: bystanders missed {r['hostile']['missing']} or were closed {r['bystanders_closed']}")
        ctx.log(f"    quiet p50 {r['quiet']['p50_ms']:.1f} / p99 {r['quiet']['p99_ms']:.1f} ms; "
                f"hostile p50 {r['hostile']['p50_ms']:.1f} / p99 {r['hostile']['p99_ms']:.1f} ms "
                f"({r['p99_ratio']:.2f}x); hostile closes {r['hostile_closes']}")
        results[label] = r
    return results


def summarize(runs):
    rows, per = [], {}
    for label in runs[0]:
        rs = [r[label] for r in runs]
        ratio = median([r["p99_ratio"] for r in rs])
        missing = sum(r["hostile"]["missing"] + r["quiet"]["missing"] for r in rs)
        closed = sorted({c for r in rs for c in r["bystanders_closed"]})
        per[label] = {"quiet_p99_ms": median([r["quiet"]["p99_ms"] for r in rs]),
                      "hostile_p99_ms": median([r["hostile"]["p99_ms"] for r in rs]),
                      "quiet_p50_ms": median([r["quiet"]["p50_ms"] for r in rs]),
                      "hostile_p50_ms": median([r["hostile"]["p50_ms"] for r in rs]),
                      "p99_ratio": ratio, "missing": missing, "bystanders_closed": closed,
                      "hostile_closes": rs[-1]["hostile_closes"]}
        rows.append({
            "scenario": "30 dashboards beside a hostile viewer", "variant": label,
            "target": "bystanders miss nothing, none closed; p99 beside the quiet run",
            "measured": f"p99 {per[label]['hostile_p99_ms']:.0f} ms vs {per[label]['quiet_p99_ms']:.0f} ms quiet, "
                        f"missing {missing}, closed {closed or 'none'}",
            "ratio": ratio, "pass": missing == 0 and not closed,
        })
    return {"per_variant": per, "rows": rows}

"""Fan-out: latency of one change to 1,000 dashboards, and server CPU per delivered change
for bursts of 100 changes to 500 dashboards, against the two references in the same run.

Per server variant, one process: connect N clients (stamp mode), 3 warm-up changes, then
K changes paced `RATE`/s (each is delivered to all N before the next), latency = arrival
minus commit (project) or minus the moment the reference starts its broadcast. Then all but
M clients close, the idle CPU rate is measured, and B bursts of 100 changes are written as
fast as possible; server CPU (utime+stime, idle rate subtracted) / (changes x M clients).
"""
import asyncio

from bench.common import median, summary_ms
from bench.scenarios import (
    Project, Reference, cpu_above_idle, idle_cpu, median_of, over_runs, row, run_each, summary, warn,
)

NAME = "fanout"
TITLE = "Fan-out latency and server CPU per delivered change"

# Heartbeats are pushed out of the measurement window (documented in docs/performance.md).
QUIET_HEARTBEAT = {"REALTIME_HEARTBEAT_INTERVAL": 600, "REALTIME_HEARTBEAT_TIMEOUT": 60}


def variants(ctx):
    out = [("floor", "raw", None), ("tutorial", "tutorial", None)]
    for config in ctx.configs:
        for kind in ctx.servers:
            out.append((f"project/{kind}/{config}", kind, config))
    return out


async def deliver(target, label, clients, keep, changes=20, rate=2.0, burst=100, bursts=1, view=None, **write):
    """Latency of `changes` paced changes to `clients` stamp-mode dashboards (each delivered to
    all before the next), then server CPU per delivered change for `bursts` bursts of `burst`
    changes written as fast as possible to `keep` of them, beyond the idle rate. `write` goes
    to every `target.write` (views: which tasks change)."""
    server = target.server
    fleet = await target.fleet(clients, view=view, label=label)
    synced = fleet.synced_clients()
    result = {"connect_s": fleet.connect_s}
    # Warm-up (also starts an external writer's path once).
    await target.write(3, rate=10, **write)
    await fleet.wait_progress(lambda: fleet.events_received, 3 * synced, timeout=20)
    fleet.clear_frames()
    # Latency.
    answer = await target.write(changes, rate=rate, **write)
    await fleet.wait_progress(lambda: fleet.events_received, changes * synced, timeout=changes / rate + 30)
    latencies, missing = fleet.stamp_latencies(answer["stamps"])
    result["latency"] = {**summary_ms(latencies), "missing": int(missing)}
    # The distribution as 401 quantiles (0, 0.25, ... 100 %): enough for the plot, small JSON.
    import numpy as np

    result["latency_quantiles_ms"] = (np.percentile(latencies * 1000, np.linspace(0, 100, 401)).round(3).tolist()
                                      if latencies.size else [])
    # CPU per delivered change.
    await fleet.close(fleet.clients[keep:])
    kept = [c for c in fleet.clients[:keep] if c.synced]
    idle_rate = await idle_cpu(server.pid)
    total_cpu, total_deliveries, drains, frames = 0.0, 0, [], 0

    async def one_burst():
        answer = await target.write(burst, rate=0, **write)
        return answer, await fleet.wait_progress(lambda: fleet.events_received, burst * len(kept), timeout=120)

    for _ in range(bursts):
        fleet.clear_frames()
        (answer, done), cpu, t1 = await cpu_above_idle(server.pid, idle_rate, one_burst())
        if not done:
            warn(f"{label}: burst delivered {fleet.events_received}/{burst * len(kept)}")
        total_cpu += cpu
        total_deliveries += fleet.events_received
        frames += sum(len(c.frames) for c in kept)
        last_arrival = max((c.frames[-1][0] for c in kept if c.frames), default=t1)
        drains.append(last_arrival - answer["stamps"][0][1])
        await asyncio.sleep(0.5)
    result["cpu"] = {
        "us_per_delivery": total_cpu / total_deliveries * 1e6 if total_deliveries else None,
        "cpu_s": total_cpu, "deliveries": total_deliveries, "idle_rate": idle_rate,
        "clients": len(kept), "changes": burst * bursts, "drain_s": median(drains),
        "events_per_frame": total_deliveries / frames if frames else None,
        "missing": burst * bursts * len(kept) - total_deliveries,
    }
    await fleet.close()
    return result


async def measure(ctx, label, kind, config):
    target = Reference(ctx, kind) if config is None else Project(ctx, config, kind, **QUIET_HEARTBEAT)
    with target:
        target.start()
        bursts = 1 if kind == "tutorial" else ctx.size(3, 1)
        return {"label": label, "server": kind, "config": config, **await deliver(
            target, label, ctx.size(1000, 300), ctx.size(500, 200), changes=ctx.size(20, 8),
            burst=ctx.size(100, 50), bursts=bursts)}


def describe(r):
    lat, cpu = r["latency"], r["cpu"]
    return (f"p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms  missing {lat['missing']}  "
            f"cpu {cpu['us_per_delivery']:.1f} us/delivery  drain {cpu['drain_s']:.2f}s  (connect {r['connect_s']:.1f}s)")


async def run(ctx):
    results = await run_each(ctx, [(label, label, kind, config) for label, kind, config in variants(ctx)],
                             measure, describe)
    floor, tutorial = results["floor"], results["tutorial"]
    for r in results.values():
        r["p99_vs_floor"] = r["latency"]["p99_ms"] / floor["latency"]["p99_ms"]
        r["cpu_vs_floor"] = r["cpu"]["us_per_delivery"] / floor["cpu"]["us_per_delivery"]
        r["tutorial_vs_cpu"] = tutorial["cpu"]["us_per_delivery"] / r["cpu"]["us_per_delivery"]
    return results


def summarize(runs):
    per = {}
    for label, rs in over_runs(runs).items():
        per[label] = {
            **{key: median_of(rs, "latency", key) for key in ("p50_ms", "p99_ms", "max_ms")},
            "missing": sum(r["latency"]["missing"] for r in rs),
            **{key: median_of(rs, "cpu", key) for key in ("us_per_delivery", "drain_s", "events_per_frame")},
            "burst_missing": sum(r["cpu"].get("missing", 0) for r in rs),
            **{key: median_of(rs, key) for key in ("p99_vs_floor", "cpu_vs_floor", "tutorial_vs_cpu")},
            "runs": len(rs),
        }
    rows = []
    floor, tutorial = per["floor"], per["tutorial"]
    for label, s in per.items():
        if not label.startswith("project/"):
            continue
        rows.append(row("one change to 1,000 dashboards", label, "p99 <= 1.5x floor p99",
                        f"p99 {s['p99_ms']:.1f} ms (floor {floor['p99_ms']:.1f} ms)",
                        s["p99_vs_floor"], s["p99_vs_floor"] <= 1.5 and s["missing"] == 0))
        rows.append(row("CPU per delivered change (100 changes x 500)", label, "<= 2x floor and >= 7x better than tutorial",
                        f"{s['us_per_delivery']:.1f} us (floor {floor['us_per_delivery']:.1f}, "
                        f"tutorial {tutorial['us_per_delivery']:.0f})",
                        s["cpu_vs_floor"], s["cpu_vs_floor"] <= 2.0 and s["tutorial_vs_cpu"] >= 7.0,
                        ratio2=s["tutorial_vs_cpu"]))
    return summary(per, rows)

"""Fan-out: latency of one change to 1,000 dashboards, and server CPU per delivered change
for bursts of 100 changes to 500 dashboards, against the two references in the same run.

Per server variant, one process: connect N clients (stamp mode), 3 warm-up changes, then
K changes paced `RATE`/s (each is delivered to all N before the next), latency = arrival
minus commit (project) or minus the moment the reference starts its broadcast. Then all but
M clients close, the idle CPU rate is measured, and B bursts of 100 changes are written as
fast as possible; server CPU (utime+stime, idle rate subtracted) / (changes x M clients).
"""
import asyncio
import time

from bench.common import cpu_seconds, median, summary_ms
from bench.loadclient import Fleet
from bench.scenarios import EMBEDDED, SCALEOUT, Project, Reference, warn

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


async def measure(ctx, label, kind, config):
    n_latency = ctx.size(1000, 300)
    n_cpu = ctx.size(500, 200)
    changes = ctx.size(20, 8)
    rate = 2.0
    burst = ctx.size(100, 50)
    bursts = 1 if kind == "tutorial" else ctx.size(3, 1)
    target = Reference(ctx, kind) if config is None else Project(ctx, config, kind, **QUIET_HEARTBEAT)
    result = {"label": label, "server": kind, "config": config}
    try:
        server = target.start()
        fleet = Fleet(server.port, target.cookie, "stamp")
        result["connect_s"] = await fleet.connect(n_latency, concurrency=100)
        synced = sum(1 for c in fleet.clients if c.synced)
        if synced < n_latency:
            warn(f"{label}: only {synced}/{n_latency} clients synced")
        # Warm-up (also starts an external writer's path once).
        await target.write(3, rate=10)
        await fleet.wait_progress(lambda: fleet.events_received, 3 * synced, timeout=20)
        fleet.clear_frames()
        # Latency.
        answer = await target.write(changes, rate=rate)
        await fleet.wait_progress(lambda: fleet.events_received, changes * synced, timeout=changes / rate + 30)
        latencies, missing = fleet.stamp_latencies(answer["stamps"])
        result["latency"] = summary_ms(latencies)
        result["latency"]["missing"] = int(missing)
        # The distribution as 401 quantiles (0, 0.25, ... 100 %): enough for the plot, small JSON.
        import numpy as np

        result["latency_quantiles_ms"] = (np.percentile(latencies * 1000, np.linspace(0, 100, 401)).round(3).tolist()
                                          if latencies.size else [])
        # CPU per delivered change.
        await fleet.close(fleet.clients[n_cpu:])
        kept = [c for c in fleet.clients[:n_cpu] if c.synced]
        await asyncio.sleep(1.0)
        t0, c0 = time.monotonic(), cpu_seconds(server.pid)
        await asyncio.sleep(2.0)
        idle_rate = (cpu_seconds(server.pid) - c0) / (time.monotonic() - t0)
        total_cpu, total_deliveries, drains, frames = 0.0, 0, [], 0
        for _ in range(bursts):
            fleet.clear_frames()
            c0, t0 = cpu_seconds(server.pid), time.monotonic()
            answer = await target.write(burst, rate=0)
            done = await fleet.wait_progress(lambda: fleet.events_received, burst * len(kept), timeout=120)
            t1, c1 = time.monotonic(), cpu_seconds(server.pid)
            if not done:
                warn(f"{label}: burst delivered {fleet.events_received}/{burst * len(kept)}")
            total_cpu += max(0.0, (c1 - c0) - idle_rate * (t1 - t0))
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
    finally:
        target.stop()
    return result


async def run(ctx):
    results = {}
    for label, kind, config in variants(ctx):
        ctx.log(f"  {label} ...")
        r = await measure(ctx, label, kind, config)
        lat, cpu = r["latency"], r["cpu"]
        ctx.log(f"    p50 {lat['p50_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms  missing {lat['missing']}  "
                f"cpu {cpu['us_per_delivery']:.1f} us/delivery  drain {cpu['drain_s']:.2f}s  (connect {r['connect_s']:.1f}s)")
        results[label] = r
    floor, tutorial = results["floor"], results["tutorial"]
    for r in results.values():
        r["p99_vs_floor"] = r["latency"]["p99_ms"] / floor["latency"]["p99_ms"]
        r["cpu_vs_floor"] = r["cpu"]["us_per_delivery"] / floor["cpu"]["us_per_delivery"]
        r["tutorial_vs_cpu"] = tutorial["cpu"]["us_per_delivery"] / r["cpu"]["us_per_delivery"]
    return results


def summarize(runs):
    labels = list(runs[0].keys())
    per = {}
    for label in labels:
        rs = [r[label] for r in runs if label in r]
        per[label] = {
            "p50_ms": median([r["latency"]["p50_ms"] for r in rs]),
            "p99_ms": median([r["latency"]["p99_ms"] for r in rs]),
            "max_ms": median([r["latency"]["max_ms"] for r in rs]),
            "missing": sum(r["latency"]["missing"] for r in rs),
            "us_per_delivery": median([r["cpu"]["us_per_delivery"] for r in rs]),
            "drain_s": median([r["cpu"]["drain_s"] for r in rs]),
            "events_per_frame": median([r["cpu"].get("events_per_frame") for r in rs]),
            "burst_missing": sum(r["cpu"].get("missing", 0) for r in rs),
            "p99_vs_floor": median([r["p99_vs_floor"] for r in rs]),
            "cpu_vs_floor": median([r["cpu_vs_floor"] for r in rs]),
            "tutorial_vs_cpu": median([r["tutorial_vs_cpu"] for r in rs]),
            "runs": len(rs),
        }
    rows = []
    for label, s in per.items():
        if not label.startswith("project/"):
            continue
        rows.append({
            "scenario": "one change to 1,000 dashboards", "variant": label,
            "target": "p99 <= 1.5x floor p99",
            "measured": f"p99 {s['p99_ms']:.1f} ms (floor {per['floor']['p99_ms']:.1f} ms)",
            "ratio": s["p99_vs_floor"], "pass": s["p99_vs_floor"] <= 1.5 and s["missing"] == 0,
        })
        rows.append({
            "scenario": "CPU per delivered change (100 changes x 500)", "variant": label,
            "target": "<= 2x floor and >= 7x better than tutorial",
            "measured": f"{s['us_per_delivery']:.1f} us (floor {per['floor']['us_per_delivery']:.1f}, "
                        f"tutorial {per['tutorial']['us_per_delivery']:.0f})",
            "ratio": s["cpu_vs_floor"],
            "ratio2": s["tutorial_vs_cpu"],
            "pass": s["cpu_vs_floor"] <= 2.0 and s["tutorial_vs_cpu"] >= 7.0,
        })
    return {"per_variant": per, "rows": rows}

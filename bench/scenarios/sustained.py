"""Sustained load: 100 changes/s to 1,000 dashboards for 60 s, clients applying the stream.

Every client applies what it is sent by the protocol rules (resubscribing on gaps), records
the arrival time of each change (a change recovered through a `sync` counts as delivered
when the sync arrived) and, at the end, must equal the database. Heartbeats at their
defaults (25 s / 10 s), answered by the clients.
"""
import asyncio
import math
import time

from bench.common import median, summary_ms
from bench.loadclient import Fleet
from bench.scenarios import Project, cpu_sampler, warn

NAME = "sustained"
TITLE = "Sustained 100 changes/s"
RATE = 100.0


async def measure(ctx, config, kind="daphne"):
    clients = ctx.size(1000, 300)
    seconds = ctx.size(60, 15)
    n = int(RATE * seconds)
    project = Project(ctx, config, kind)
    result = {"config": config, "server": kind, "clients": clients, "seconds": seconds, "rate": RATE}
    try:
        server = project.start()
        fleet = Fleet(server.port, project.cookie, "apply")
        result["connect_s"] = await fleet.connect(clients, concurrency=100)
        head = (await project.state())["head"]
        fleet.track(head + 1, n + 2000)  # other writers (the hub's liveness sweep) take numbers too
        async with cpu_sampler(server.pid) as cpu:
            # Embedded: 4 request threads at 25/s each, like agents posting to the HTTP API.
            answer = await project.write(n, rate=RATE, timeout=seconds * 3 + 60, threads=4)
            final = answer["stamps"][-1][0]
            caught_up = await fleet.wait(lambda: all(c.last is not None and c.last >= final for c in fleet.clients), 60, 0.05)
            drained_at = time.monotonic()
        if not caught_up:
            warn(f"sustained {config}: not every client reached seq {final}")
        truth = await project.state()
        expected = (truth["tasks"], truth["agents"])
        equal = sum(1 for c in fleet.clients if c.versions() == expected)
        # Latency per change per client.
        import numpy as np

        base = fleet.track_base
        commit = np.full(fleet.track_size, np.nan)
        for seq, t in answer["stamps"]:
            if 0 <= seq - base < fleet.track_size:
                commit[seq - base] = t
        lat, missing = [], 0
        per_second = {}
        start = answer["stamps"][0][1]
        for client in fleet.clients:
            recv = np.frombuffer(client.recv, dtype=float) if client.recv is not None else np.full(fleet.track_size, np.nan)
            d = recv - commit
            ok = ~np.isnan(commit)
            missing += int(np.isnan(d[ok]).sum())
            lat.append(d[ok & ~np.isnan(d)])
        lat = np.concatenate(lat) if lat else np.asarray([])
        # p99 per second of the run (for the plot), from commit time buckets.
        commit_ok = commit[~np.isnan(commit)]
        buckets = ((commit_ok - start)).astype(int)
        all_d = np.stack([
            (np.frombuffer(c.recv, dtype=float) if c.recv is not None else np.full(fleet.track_size, np.nan))[~np.isnan(commit)]
            - commit_ok for c in fleet.clients])
        for second in range(int(buckets.max()) + 1 if buckets.size else 0):
            cols = all_d[:, buckets == second]
            vals = cols[~np.isnan(cols)]
            if vals.size:
                per_second[second] = float(np.percentile(vals, 99) * 1000)
        result.update(
            latency=summary_ms(lat), missing=missing, final_seq=final, equal=equal,
            all_equal=equal == clients, caught_up=caught_up,
            write_elapsed=answer["elapsed"], achieved_rate=n / answer["elapsed"],
            drain_after_last_commit_s=drained_at - answer["stamps"][-1][1],
            gaps=sum(c.gaps for c in fleet.clients), syncs=sum(c.syncs for c in fleet.clients) - clients,
            duplicates=sum(c.duplicates for c in fleet.clients),
            close_codes=sorted({code for c in fleet.clients for code in c.close_codes}),
            cpu_mean=float(np.mean([v for _, v in cpu])) if cpu else None,
            cpu_series=[round(v, 3) for _, v in cpu], p99_series=per_second,
        )
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
        lat = r["latency"]
        ctx.log(f"    p50 {lat.get('p50_ms', math.nan):.1f} ms  p99 {lat.get('p99_ms', math.nan):.1f} ms  "
                f"max {lat.get('max_ms', math.nan):.0f} ms  equal {r['equal']}/{r['clients']}  "
                f"resyncs {r['syncs']}  cpu {r['cpu_mean'] or 0:.0%}  rate {r['achieved_rate']:.0f}/s")
        results[label] = r
    return results


def summarize(runs):
    rows, per = [], {}
    for label in runs[0]:
        rs = [r[label] for r in runs]
        p99 = median([r["latency"].get("p99_ms") for r in rs])
        equal = all(r["all_equal"] for r in rs)
        per[label] = {"p50_ms": median([r["latency"].get("p50_ms") for r in rs]), "p99_ms": p99,
                      "max_ms": median([r["latency"].get("max_ms") for r in rs]), "all_equal": equal,
                      "cpu_mean": median([r["cpu_mean"] for r in rs]), "resyncs": median([r["syncs"] for r in rs]),
                      "clients": rs[0]["clients"], "seconds": rs[0]["seconds"]}
        rows.append({
            "scenario": f"sustained {RATE:.0f}/s to {rs[0]['clients']:,} for {rs[0]['seconds']} s", "variant": label,
            "target": "p99 < 250 ms, all clients equal to DB",
            "measured": f"p99 {p99:.0f} ms, p50 {per[label]['p50_ms']:.0f} ms, "
                        f"{'all' if equal else 'NOT all'} equal, server CPU {per[label]['cpu_mean']:.0%}",
            "ratio": p99 / 250.0, "pass": p99 < 250 and equal,
        })
    return {"per_variant": per, "rows": rows}

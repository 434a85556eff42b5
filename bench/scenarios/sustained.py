"""Sustained load: 100 changes/s to 1,000 dashboards for 60 s, clients applying the stream.

Every client applies what it is sent by the protocol rules (resubscribing on gaps), records
the arrival time of each change (a change recovered through a `sync` counts as delivered
when the sync arrived) and, at the end, must equal the database. Heartbeats at their
defaults (25 s / 10 s), answered by the clients.
"""
import math
import time

from bench.common import summary_ms
from bench.scenarios import cpu_sampler, each_config, median_of, row, serving, summarizer, warn

NAME = "sustained"
TITLE = "Sustained 100 changes/s"
RATE = 100.0


async def measure(ctx, config, kind="daphne"):
    clients = ctx.size(1000, 300)
    seconds = ctx.size(60, 15)
    n = int(RATE * seconds)
    result = {"config": config, "server": kind, "clients": clients, "seconds": seconds, "rate": RATE}
    async with serving(ctx, config, clients, "apply", kind) as (project, fleet):
        server = project.server
        result["connect_s"] = fleet.connect_s
        head = (await project.state())["head"]
        fleet.track(head + 1, n + 2000)  # other writers (the hub's liveness sweep) take numbers too
        async with cpu_sampler(server.pid) as cpu:
            # Embedded: 4 request threads at 25/s each, like agents posting to the HTTP API.
            answer = await project.write(n, rate=RATE, timeout=seconds * 3 + 60, threads=4)
            final = answer["stamps"][-1][0]
            caught_up = await fleet.reach(final, 60, 0.05)
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
    return result


def describe(r):
    lat = r["latency"]
    return (f"p50 {lat.get('p50_ms', math.nan):.1f} ms  p99 {lat.get('p99_ms', math.nan):.1f} ms  "
            f"max {lat.get('max_ms', math.nan):.0f} ms  equal {r['equal']}/{r['clients']}  "
            f"resyncs {r['syncs']}  cpu {r['cpu_mean'] or 0:.0%}  rate {r['achieved_rate']:.0f}/s")


run = each_config(measure, describe)


def summarize_variant(label, rs):
    entry = {f"{q}_ms": median_of(rs, "latency", f"{q}_ms") for q in ("p50", "p99", "max")}
    entry.update(all_equal=all(r["all_equal"] for r in rs), cpu_mean=median_of(rs, "cpu_mean"),
                 resyncs=median_of(rs, "syncs"), clients=rs[0]["clients"], seconds=rs[0]["seconds"])
    p99, equal = entry["p99_ms"], entry["all_equal"]
    return entry, [row(
        f"sustained {RATE:.0f}/s to {rs[0]['clients']:,} for {rs[0]['seconds']} s", label,
        "p99 < 250 ms, all clients equal to DB",
        f"p99 {p99:.0f} ms, p50 {entry['p50_ms']:.0f} ms, "
        f"{'all' if equal else 'NOT all'} equal, server CPU {entry['cpu_mean']:.0%}",
        p99 / 250.0, p99 < 250 and equal)]


summarize = summarizer(summarize_variant)

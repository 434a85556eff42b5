"""Idle capacity: 10,000 connections on one process with heartbeats.

Clients connect in four steps (RSS measured after each), then sit idle answering the hub's
`ping`s (and daphne's protocol pings) while the server's CPU is measured over 30 s. The
heartbeat runs at its defaults (REALTIME_HEARTBEAT_INTERVAL=25, TIMEOUT=10): in a 30 s window
every socket is pinged at least once. Memory per connection = (RSS at N - RSS with 10
clients) / (N - 10).
"""
import asyncio
import time

from bench.common import cpu_seconds, rss_bytes
from bench.scenarios import EMBEDDED, row, run_each, serving, summarizer, warn

NAME = "capacity"
TITLE = "Idle connections with heartbeats"
HEARTBEAT = {"REALTIME_HEARTBEAT_INTERVAL": 25, "REALTIME_HEARTBEAT_TIMEOUT": 10}


async def measure(ctx, kind):
    total = ctx.size(10_000, 2_000)
    window = ctx.size(30, 10)
    result = {"server": kind, "config": EMBEDDED, "target_connections": total, "window_s": window, **HEARTBEAT}
    async with serving(ctx, EMBEDDED, 10, kind=kind, env=HEARTBEAT, concurrency=10) as (project, fleet):
        server = project.server
        await asyncio.sleep(2)
        base = rss_bytes(server.pid)
        steps = [(10, base)]
        t0 = time.monotonic()
        for k in range(4):
            await fleet.connect(total // 4 - (10 if k == 0 else 0), concurrency=100)
            await asyncio.sleep(2)
            steps.append((fleet.open_count, rss_bytes(server.pid)))
            ctx.log(f"    {fleet.open_count} open, RSS {steps[-1][1] / 2**20:.0f} MiB")
        result["connect_s"] = time.monotonic() - t0
        open_now = fleet.open_count
        await asyncio.sleep(5)
        pings0 = sum(c.pings for c in fleet.clients)
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(window)
        c1, t1 = cpu_seconds(server.pid), time.monotonic()
        pings = sum(c.pings for c in fleet.clients) - pings0
        rss = rss_bytes(server.pid)
        still_open = fleet.open_count
        if still_open < open_now:
            warn(f"capacity: {open_now - still_open} sockets closed while idle")
        result.update(
            connections=open_now, still_open=still_open, failures=fleet.connect_failures,
            rss_base_mib=base / 2**20, rss_mib=rss / 2**20,
            kib_per_connection=(steps[-1][1] - base) / 1024 / max(1, steps[-1][0] - 10),
            idle_cpu=(c1 - c0) / (t1 - t0), pings=pings, steps=steps,
            close_codes=sorted({code for c in fleet.clients for code in c.close_codes}),
        )
    return result


def describe(r):
    return (f"{r['connections']} open ({r['still_open']} after idle), {r['kib_per_connection']:.1f} KiB each, "
            f"idle CPU {r['idle_cpu']:.1%}, {r['pings']} pings in {r['window_s']} s, connect {r['connect_s']:.0f}s")


async def run(ctx):
    # 10,000 sockets take minutes to open; the full run measures daphne (the default server).
    kinds = ctx.servers if ctx.quick else ctx.servers[:1]
    return await run_each(ctx, [(f"project/{kind}/{EMBEDDED}", kind) for kind in kinds], measure, describe)


def summarize(runs):
    return summarizer(summarize_variant)(runs[:1])  # one long run


def summarize_variant(label, rs):
    r = rs[0]
    ok = r["still_open"] >= r["target_connections"] and r["kib_per_connection"] <= 40 and r["idle_cpu"] < 0.05
    return r, [row(
        "idle connections with heartbeats", label, "10,000 per process, <= 40 KiB each, idle CPU < 5%",
        f"{r['still_open']:,} open, {r['kib_per_connection']:.1f} KiB each, idle CPU {r['idle_cpu']:.1%}",
        max(r["kib_per_connection"] / 40, r["idle_cpu"] / 0.05), ok)]

"""Where a late change waited: commit, arrival at the hub, arrival at the dashboards, and the
server's garbage collections, per change.

    .venv/bin/python bench/trace.py                      # pg-redis, daphne, 1,000 dashboards, 40 changes at 2/s
    .venv/bin/python bench/trace.py --configs embedded --clients 500 --changes 60

A server started with BENCH_TRACE=<file> (bench/bench_asgi.py installs `install` below)
appends one line per layer message as the hub takes it (`hub <first seq> <last seq> <t>`)
and one per collection that took 1 ms or more, or any of the oldest generation
(`gc <generation> <start t> <ms> <collected>`); every t is time.monotonic(), the clock of the
writer's commit stamps and of the load client's arrivals. The driver prints, per change:
commit to hub, hub to the median and to the last dashboard, and the collections that
overlapped that interval. Never part of the test suite.
"""
import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def install(path):
    """In the server: trace the hub's layer messages and the collections into `path`."""
    from realtime.protocol import LAYER_CHANGES
    from realtime.hub import Hub

    out = open(path, "a", buffering=1)
    started = []

    def on_gc(phase, info):
        if phase == "start":
            started.append(time.monotonic())
        elif started:
            t0 = started.pop()
            ms = (time.monotonic() - t0) * 1000
            if ms >= 1.0 or info["generation"] == 2:
                out.write(f"gc {info['generation']} {t0:.6f} {ms:.3f} {info['collected']}\n")

    gc.callbacks.append(on_gc)
    original = Hub.on_layer_message

    async def on_layer_message(self, message):
        if message.get("type") == LAYER_CHANGES and message.get("events"):
            seqs = [e["seq"] for e in message["events"]]
            out.write(f"hub {seqs[0]} {seqs[-1]} {time.monotonic():.6f}\n")
        return await original(self, message)

    Hub.on_layer_message = on_layer_message


def read(path):
    hub, collections = {}, []
    for line in Path(path).read_text().splitlines():
        kind, *rest = line.split()
        if kind == "hub":
            first, last, t = int(rest[0]), int(rest[1]), float(rest[2])
            for seq in range(first, last + 1):
                hub.setdefault(seq, t)
        elif kind == "gc":
            collections.append((int(rest[0]), float(rest[1]), float(rest[2]), int(rest[3])))
    return hub, collections


async def main(args):
    from bench.common import cleanup_all, pin_self, raise_nofile
    from bench.scenarios import Context
    from bench.scenarios.views import DEFAULT_VIEW

    pin_self()
    raise_nofile()
    trace = Path(tempfile.mkstemp(prefix="bench-trace-", suffix=".log")[1])
    ctx = Context(configs=[args.configs])
    from bench.scenarios import Project

    try:
        env = {"BENCH_TRACE": str(trace), "REALTIME_HEARTBEAT_INTERVAL": 600, "REALTIME_HEARTBEAT_TIMEOUT": 60}
        with Project(ctx, args.configs, args.server, **env) as project:
            project.start()
            fleet = await project.fleet(args.clients, view=DEFAULT_VIEW if args.view else None, label="trace")
            synced = fleet.synced_clients()
            await project.write(3, rate=10, newest=args.view)
            await fleet.wait_progress(lambda: fleet.events_received, 3 * synced, timeout=20)
            fleet.clear_frames()
            answer = await project.write(args.changes, rate=args.rate, newest=args.view)
            await fleet.wait_progress(lambda: fleet.events_received, args.changes * synced,
                                      timeout=args.changes / args.rate + 30)
            arrivals = {}
            for client in fleet.clients:
                for t, payload in client.frames:
                    frame = fleet.decode(payload)
                    for item in frame["items"] if frame.get("type") == "events" else [frame]:
                        if "seq" in item:
                            arrivals.setdefault(item["seq"], []).append(t)
            await fleet.close()
        hub, collections = read(trace)
        print(f"{'seq':>8} {'commit->hub ms':>15} {'hub->p50 ms':>12} {'hub->last ms':>13}  collections overlapping")
        worst = []
        for seq, committed in answer["stamps"]:
            at_hub = hub.get(seq)
            times = sorted(arrivals.get(seq, []))
            if at_hub is None or not times:
                print(f"{seq:>8}  (not seen at the hub or by any dashboard)")
                continue
            end = times[-1]
            overlap = [f"gen{g} {ms:.0f} ms" for g, t0, ms, _ in collections if t0 < end and t0 + ms / 1000 > committed]
            worst.append((end - committed, seq))
            print(f"{seq:>8} {(at_hub - committed) * 1000:>15.1f} {(times[len(times) // 2] - at_hub) * 1000:>12.1f} "
                  f"{(end - at_hub) * 1000:>13.1f}  {', '.join(overlap)}")
        gen2 = [c for c in collections if c[0] == 2]
        print(f"\ncollections of 1 ms or more in the server during the run: {len(collections)}; of generation 2: "
              f"{len(gen2)}, longest {max((c[2] for c in gen2), default=0):.0f} ms")
        worst.sort(reverse=True)
        print("slowest changes (commit to last dashboard): "
              + ", ".join(f"{seq}: {s * 1000:.0f} ms" for s, seq in worst[:5]))
    finally:
        trace.unlink(missing_ok=True)
        cleanup_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="pg-redis", choices=["embedded", "pg-redis"])
    parser.add_argument("--server", default="daphne", choices=["daphne", "uvicorn"])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--view", action="store_true", help="the page's view (protocol v2) instead of the whole stream")
    asyncio.run(main(parser.parse_args()))

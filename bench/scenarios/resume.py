"""Resume after 100,000 missed changes to 50 rows.

A client syncs and goes away. 100,000 sequenced changes (QuerySet.update over 50 tasks,
then 5 deletions and 5 new tasks) are committed. The client comes back with
subscribe(since, epoch): it must get one `sync` with about 50 rows and the deletions, not a
reset and not 100,000 frames. Server time is measured twice: from the client (subscribe
sent -> sync received, an upper bound) and in-process (`build_sync()` called directly).
The database is filled once per invocation; each run repeats the resume 10 times.
"""
import asyncio
import time

from bench.common import median, run_tool
from bench.loadclient import Client, Fleet
from bench.scenarios import Project, each_config, median_of, row, summarizer

NAME = "resume"
TITLE = "Resume after 100,000 missed changes"

_filled = {}


async def prepare(ctx, config):
    """A running server whose database holds the missed changes (made once per config)."""
    if config in _filled:
        return _filled[config]
    changes = ctx.size(100_000, 20_000)
    project = Project(ctx, config)
    project.start()
    fleet = await project.fleet(1, "apply")
    client = fleet.clients[0]
    since, epoch = client.last, client.epoch
    await fleet.close()
    t0 = time.monotonic()
    fill = await run_tool(["fill", "--changes", changes, "--rows", 50, "--deletes", 5],
                          {k: v for k, v in project.writer_env.items() if k != "REDIS_URL"}, timeout=1800)
    ctx.log(f"    filled {fill['changes']:,} changes in {time.monotonic() - t0:.0f}s "
            f"(QuerySet.update: {fill['update_rate']:.0f} changes/s)")
    _filled[config] = (project, since, epoch, fill)
    return _filled[config]


async def measure(ctx, config):
    project, since, epoch, fill = await prepare(ctx, config)
    times, sizes, rows, deleted, resets, frames = [], [], [], [], 0, []
    for _ in range(10):
        fleet = Fleet(project.server.port, project.cookie, "apply")
        client = Client(fleet, 0)
        fleet.clients.append(client)
        client.last, client.epoch = since, epoch
        captured = []
        original = client.on_text

        def on_text(payload, t, original=original, captured=captured):
            captured.append((t, len(payload)))
            original(payload, t)

        client.on_text = on_text
        t0 = time.monotonic()
        await client.connect()
        sent = time.monotonic()
        await fleet.wait(lambda: client.syncs >= 1, 30)
        times.append((captured[0][0] - sent) * 1000)
        sizes.append(captured[0][1])
        rows.append(len(client.tasks) + len(client.agents))
        resets += client.resets
        frames.append(len(captured))
        client.close()
        await asyncio.sleep(0.05)
    server_side = await run_tool(["timesync", "--since", since, "--epoch", epoch, "--repeat", 20], project.writer_env)
    return {"config": config, "missed": fill["head"] - since, "client_ms": median(times), "client_ms_all": times,
            "build_sync_ms": server_side["median_ms"], "sync_rows": server_side["rows"],
            "sync_deleted": server_side["deleted"], "sync_bytes": server_side["bytes"],
            "reset": server_side["reset"] or resets > 0, "frames_per_resume": median(frames),
            "fill_update_rate": fill["update_rate"]}


def describe(r):
    return (f"missed {r['missed']:,}: sync of {r['sync_rows']} rows + {r['sync_deleted']} deletions, "
            f"{r['sync_bytes']:,} bytes, reset {r['reset']}; client-measured {r['client_ms']:.1f} ms, "
            f"build_sync {r['build_sync_ms']:.1f} ms")


run = each_config(measure, describe)


def summarize(runs):
    for project, *_ in _filled.values():
        project.stop()
    _filled.clear()
    return summarizer(summarize_variant)(runs)


def summarize_variant(label, rs):
    client_ms, build_ms = median_of(rs, "client_ms"), median_of(rs, "build_sync_ms")
    r0 = rs[0]
    ok = not any(r["reset"] for r in rs) and client_ms < 50 and r0["sync_rows"] <= 60
    entry = {"client_ms": client_ms, "build_sync_ms": build_ms, "rows": r0["sync_rows"],
             "deleted": r0["sync_deleted"], "bytes": r0["sync_bytes"], "missed": r0["missed"],
             "fill_update_rate": r0["fill_update_rate"]}
    return entry, [row(
        f"resume after {r0['missed']:,} missed changes", label, "one sync of ~50 rows, < 50 ms server time",
        f"1 sync, {r0['sync_rows']} rows + {r0['sync_deleted']} deletions ({r0['sync_bytes']:,} B), "
        f"{client_ms:.1f} ms at the client, build_sync {build_ms:.1f} ms",
        client_ms / 50.0, ok)]

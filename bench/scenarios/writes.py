"""Writes through the sequencing path: committed, published changes per second.

Each change is one `Task.save()` in its own transaction: the stream row is bumped (row lock),
the task is written, the transaction commits, and on commit the event is handed to the
channel layer. A client connected to the server must receive every change and end equal to
the database (so "published" is checked, not assumed).

- embedded: SQLite, writes inside the server process (like the agents' HTTP API), 1 writer
  thread and 4 concurrent writer threads (SQLite serialises them on its write lock).
- pg-redis: PostgreSQL + Redis, writer processes beside the server (1 and 4 at once),
  publishing through Redis to the server's hub.
"""
import asyncio

from bench.common import median, run_tool
from bench.loadclient import Fleet
from bench.scenarios import EMBEDDED, SCALEOUT, Project, warn

NAME = "writes"
TITLE = "Writes through the sequencing path"
TARGETS = {EMBEDDED: 300, SCALEOUT: 1000}


async def measure(ctx, config):
    n = ctx.size(3000, 600)
    project = Project(ctx, config)
    result = {"config": config, "changes": n}
    try:
        server = project.start()
        fleet = Fleet(server.port, project.cookie, "apply")
        await fleet.connect(1)
        for writers in (1, 4):
            if config == EMBEDDED:
                answer = await project.write(n, rate=0, external=False) if writers == 1 else \
                    await _inproc_threads(project, n, writers)
                total, elapsed = n, answer["elapsed"]
            else:
                answers = await asyncio.gather(*[
                    run_tool(["write", "--n", n // writers, "--rate", 0, "--rows", 50, "--offset", 50 * k],
                             project.writer_env) for k in range(writers)])
                total = sum(len(a["stamps"]) for a in answers)
                elapsed = max(a["start"] + a["elapsed"] for a in answers) - min(a["start"] for a in answers)
            head = (await project.state())["head"]
            got = await fleet.wait(lambda: fleet.clients[0].last == head, 30)
            truth = await project.state()
            equal = fleet.clients[0].versions() == (truth["tasks"], truth["agents"])
            if not (got and equal):
                warn(f"writes {config}: the client did not end equal to the database")
            result[f"writers_{writers}"] = {"rate": total / elapsed, "elapsed": elapsed, "changes": total,
                                            "published_equal": bool(got and equal)}
        result["resyncs"] = fleet.clients[0].syncs - 1
        await fleet.close()
    finally:
        project.stop()
    return result


async def _inproc_threads(project, n, threads):
    from bench.common import http_get

    return await http_get(project.server.port, f"/bench/write?n={n}&rate=0&rows=50&threads={threads}")


async def run(ctx):
    results = {}
    for config in ctx.configs:
        label = f"project/daphne/{config}"
        ctx.log(f"  {label} ...")
        r = await measure(ctx, config)
        ctx.log(f"    1 writer {r['writers_1']['rate']:.0f}/s, 4 writers {r['writers_4']['rate']:.0f}/s, "
                f"published+equal {r['writers_1']['published_equal'] and r['writers_4']['published_equal']}, "
                f"client resyncs {r['resyncs']}")
        results[label] = r
    return results


def summarize(runs):
    rows, per = [], {}
    for label in runs[0]:
        rs = [r[label] for r in runs]
        config = rs[0]["config"]
        one = median([r["writers_1"]["rate"] for r in rs])
        four = median([r["writers_4"]["rate"] for r in rs])
        ok = all(r["writers_1"]["published_equal"] and r["writers_4"]["published_equal"] for r in rs)
        best = max(one, four)
        per[label] = {"writers_1": one, "writers_4": four, "published_equal": ok}
        rows.append({
            "scenario": "writes through the sequencing path", "variant": label,
            "target": f">= {TARGETS[config]:,} committed+published/s",
            "measured": f"{one:.0f}/s (1 writer), {four:.0f}/s (4 writers), "
                        f"{'all' if ok else 'NOT all'} delivered",
            "ratio": best / TARGETS[config], "pass": best >= TARGETS[config] and ok,
        })
    return {"per_variant": per, "rows": rows}

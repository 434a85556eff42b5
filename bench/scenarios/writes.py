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

from bench.common import http_get, run_tool
from bench.scenarios import EMBEDDED, SCALEOUT, each_config, median_of, row, serving, summarizer, warn

NAME = "writes"
TITLE = "Writes through the sequencing path"
TARGETS = {EMBEDDED: 300, SCALEOUT: 1000}


async def measure(ctx, config):
    n = ctx.size(3000, 600)
    result = {"config": config, "changes": n}
    async with serving(ctx, config, 1, "apply") as (project, fleet):
        for writers in (1, 4):
            if config == EMBEDDED:
                answer = await project.write(n, rate=0, external=False) if writers == 1 else \
                    await http_get(project.server.port, f"/bench/write?n={n}&rate=0&rows=50&threads={writers}")
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
    return result


def describe(r):
    return (f"1 writer {r['writers_1']['rate']:.0f}/s, 4 writers {r['writers_4']['rate']:.0f}/s, "
            f"published+equal {r['writers_1']['published_equal'] and r['writers_4']['published_equal']}, "
            f"client resyncs {r['resyncs']}")


run = each_config(measure, describe)


def summarize_variant(label, rs):
    target = TARGETS[rs[0]["config"]]
    one, four = median_of(rs, "writers_1", "rate"), median_of(rs, "writers_4", "rate")
    ok = all(r["writers_1"]["published_equal"] and r["writers_4"]["published_equal"] for r in rs)
    return {"writers_1": one, "writers_4": four, "published_equal": ok}, [row(
        "writes through the sequencing path", label, f">= {target:,} committed+published/s",
        f"{one:.0f}/s (1 writer), {four:.0f}/s (4 writers), {'all' if ok else 'NOT all'} delivered",
        max(one, four) / target, max(one, four) >= target and ok)]


summarize = summarizer(summarize_variant)

"""Event frames for the reference servers: the same shape and size as the project's, and
their writer."""
import asyncio
import time
from datetime import datetime, timedelta, timezone

_BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)


def task_row(task_id, seq):
    """Like realtime.rows.task_row for a task saved by the bench writer."""
    created = _BASE + timedelta(seconds=task_id)
    return {
        "id": task_id,
        "title": f"bench task {task_id} change {seq}",
        "status": "queued",
        "progress": seq % 101,
        "agent": None,
        "error": "",
        "version": seq,
        "created_at": created.isoformat(),
        "updated_at": (_BASE + timedelta(microseconds=seq * 1013)).isoformat(),
        "started_at": None,
        "finished_at": None,
    }


def event(seq, rows=50):
    return {"type": "event", "seq": seq, "entity": "task", "op": "upsert", "data": task_row(seq % rows + 1, seq)}


def sync(seq, epoch):
    return {"type": "sync", "epoch": epoch, "seq": seq, "reset": True, "tasks": [], "agents": [],
            "deleted": {"tasks": [], "agents": []}}


async def write(first, n, rate, rows, send):
    """A reference's writer: the events numbered `first`.. `first + n - 1`, `rate` a second
    (0: as fast as it can), each stamped with time.monotonic() and handed to `await
    send(frame)`. Returns what /bench/write answers: {"stamps": [[seq, t], ...], "start",
    "elapsed"}."""
    stamps = []
    start = time.monotonic()
    for i in range(n):
        if rate:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        seq, t = first + i, time.monotonic()
        await send(event(seq, rows))
        stamps.append([seq, t])
    return {"stamps": stamps, "start": start, "elapsed": time.monotonic() - start}

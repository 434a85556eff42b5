"""Django-side work for the benchmarks: seeding, sequenced writes, state, sync timing.

Imported by bench/dbtool.py (a separate process) and bench/bench_asgi.py (inside the server
process). Every write goes through the project's sequencing path (`Model.save()` or
`QuerySet.update()`), so each change is numbered, committed and published like a real one.
"""
import time


def setup(tasks=50, agents=5):
    """Migrate, create the bench superuser and a session for it, seed rows."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from realtime.snapshot import stream_position
    from tasks.models import Agent, Task

    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench-pass-123"
    )
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    for i in range(agents):
        Agent.objects.create(name=f"bench-agent-{i}", hostname=f"host-{i}.example")
    Task.objects.bulk_create([Task(title=f"bench task {i}", description="seeded") for i in range(tasks)])
    epoch, head = stream_position()
    return {"session": session, "epoch": epoch, "head": head}


def _rows(count):
    from tasks.models import Task

    tasks = list(Task.objects.order_by("id")[:count])
    missing = count - len(tasks)
    if missing > 0:
        tasks += Task.objects.bulk_create([Task(title=f"extra task {i}") for i in range(missing)])
    return tasks


def write_changes(n, rate=0.0, rows=50, offset=0):
    """Save `n` task changes (one transaction each) cycling over `rows` tasks, paced at
    `rate` changes/s (0: as fast as possible). Returns [[seq, commit time], ...] where the
    commit time is time.monotonic() taken right after COMMIT returned, before the publish
    (the on_commit hooks run in order: ours is registered first)."""
    from django.db import connection, transaction

    tasks = _rows(rows + offset)[offset:offset + rows]
    stamps = []
    start = time.monotonic()
    try:
        for i in range(n):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            task = tasks[i % len(tasks)]
            task.progress = (task.progress + 1) % 101
            task.title = f"bench task {task.pk} change {i}"
            committed = []
            with transaction.atomic():
                transaction.on_commit(lambda: committed.append(time.monotonic()))
                task.save()
            stamps.append([task.version, committed[0]])
    finally:
        connection.close()
    return stamps


def running_agents(count):
    """`count` agents, each with a token and a task it has claimed: [[token, task id], ...]."""
    from django.db import connection

    from tasks import domain, tokens
    from tasks.models import Agent, Task

    try:
        pairs = []
        for i in range(count):
            agent = Agent.objects.create(name=f"api-agent-{i}", hostname=f"api-{i}.example")
            _, token = tokens.issue(agent, name="bench")
            Task.objects.create(title=f"api task {i}")
            task = domain.claim(agent_id=agent.pk)
            pairs.append([token, task.pk])
        return {"pairs": pairs}
    finally:
        connection.close()


def state():
    from django.db import connection

    from realtime.snapshot import stream_position
    from tasks.models import Agent, Task

    try:
        epoch, head = stream_position()
        return {
            "epoch": epoch,
            "head": head,
            "tasks": {str(k): v for k, v in Task.objects.values_list("id", "version")},
            "agents": {str(k): v for k, v in Agent.objects.values_list("id", "version")},
        }
    finally:
        connection.close()


def fill(changes=100_000, rows=50, deletes=5):
    """`changes` sequenced changes to `rows` tasks through QuerySet.update() (one number per
    row), then `deletes` deletions and as many new tasks: what a dashboard that slept through
    a busy night has missed."""
    from django.db import connection

    from realtime.snapshot import stream_position
    from tasks.models import Task

    tasks = _rows(rows)
    ids = [t.pk for t in tasks]
    _, before = stream_position()
    start = time.monotonic()
    done, k = 0, 0
    while done < changes:
        batch = ids[: min(len(ids), changes - done)]
        done += Task.objects.filter(pk__in=batch).update(progress=k % 101)
        k += 1
    elapsed = time.monotonic() - start
    for task in tasks[:deletes]:
        task.delete()
    Task.objects.bulk_create([Task(title=f"late task {i}") for i in range(deletes)])
    _, head = stream_position()
    connection.close()
    return {"before": before, "head": head, "changes": head - before, "update_elapsed": elapsed,
            "update_rate": done / elapsed if elapsed else None}


def time_sync(since, epoch, repeat=20):
    """Server time of the `sync` answer to subscribe(since, epoch), called directly."""
    import json

    from realtime.snapshot import build_sync

    times, text = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        text, head, reset = build_sync(since, epoch)
        times.append(time.perf_counter() - t0)
    texts = text if isinstance(text, list) else [text]  # a large sync may come in parts
    frames = [json.loads(t) for t in texts]
    times.sort()
    return {
        "median_ms": times[len(times) // 2] * 1000,
        "min_ms": times[0] * 1000,
        "max_ms": times[-1] * 1000,
        "reset": reset,
        "rows": sum(len(f["tasks"]) + len(f["agents"]) for f in frames),
        "deleted": sum(len(f["deleted"]["tasks"]) + len(f["deleted"]["agents"]) for f in frames),
        "bytes": sum(len(t) for t in texts),
        "frames": len(texts),
        "head": head,
    }

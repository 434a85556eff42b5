"""Django-side work for the benchmarks: seeding, sequenced writes, state, sync timing.

Imported by bench/dbtool.py (a separate process) and bench/bench_asgi.py (inside the server
process). Every write goes through the project's sequencing path (`Model.save()` or
`QuerySet.update()`), so each change is numbered, committed and published like a real one.
"""
import time


def setup(tasks=50, agents=5):
    """Migrate, create the bench user and a session for it, seed rows. The user views the
    dashboard through a group, as a team's operators do (not as a superuser, whose access
    check reads no permissions)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.core.management import call_command
    from django.test import Client

    from realtime import registry
    from realtime.snapshot import stream_position
    from tasks.models import Agent, Task

    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_user(
        "bench", "bench@example.com", "bench-pass-123", is_staff=True
    )
    group, _ = Group.objects.get_or_create(name="bench viewers")
    for name in registry.view_permissions():
        app_label, codename = name.split(".")
        group.permissions.add(Permission.objects.get(codename=codename, content_type__app_label=app_label))
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    for i in range(agents):
        Agent.objects.create(name=f"bench-agent-{i}", hostname=f"host-{i}.example")
    Task.objects.bulk_create([Task(title=f"bench task {i}", description="seeded") for i in range(tasks)])
    epoch, head = stream_position()
    return {"session": session, "epoch": epoch, "head": head}


def _rows(count, newest=False):
    from tasks.models import Task

    tasks = list(Task.objects.order_by("-id" if newest else "id")[:count])
    missing = count - len(tasks)
    if missing > 0:
        tasks += Task.objects.bulk_create([Task(title=f"extra task {i}") for i in range(missing)])
    return tasks


def write_changes(n, rate=0.0, rows=50, offset=0, newest=False):
    """Save `n` task changes (one transaction each) cycling over `rows` tasks, paced at
    `rate` changes/s (0: as fast as possible). Returns [[seq, commit time], ...] where the
    commit time is time.monotonic() taken right after COMMIT returned, before the publish
    (the on_commit hooks run in order: ours is registered first)."""
    from django.db import connection, transaction

    tasks = _rows(rows + offset, newest)[offset:offset + rows]
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


# Large tables (the views scenario) --------------------------------------------------------------

WORDS = ["invoice", "report", "build", "deploy", "render", "sync", "backup", "email", "index", "train",
         "crawl", "resize", "export", "import", "audit", "billing", "search", "ledger", "thumbnail", "digest"]
SHARE = (("succeeded", 0.85), ("failed", 0.10), ("cancelled", 0.025), ("queued", 0.025))


def bulk_tasks(n, agents=50, seed=1):
    """Add `n` tasks with consecutive numbers in one sequenced allocation, inserted in bulk
    (COPY on PostgreSQL, executemany on SQLite), spread over the last 30 days; one running
    task per agent. The counts are counted again. Nothing is published: run it before the
    server starts. Returns what was added."""
    import random
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from realtime import registry, sequencing
    from realtime.sequencing import allocate
    from tasks.models import Agent, Task

    rng = random.Random(seed)
    t0 = time.monotonic()
    pool = list(Agent.objects.values_list("pk", flat=True))
    for i in range(len(pool), agents):
        pool.append(Agent.objects.create(name=f"fleet-{i}", hostname=f"fleet-{i}.example").pk)
    now = timezone.now()
    from tasks.search import fold

    columns = ("title", "title_folded", "description", "status", "progress", "agent_id", "error", "created_at",
               "started_at", "finished_at", "version", "updated_at")
    with transaction.atomic():
        first, _ = allocate(n)
        rows = []
        running = set(rng.sample(range(n), min(agents, n)))
        for i in range(n):
            created = now - timedelta(seconds=(n - i) * (30 * 86400 / n))
            if i in running:
                status, agent, progress = "running", pool[len(rows) % len(pool)], rng.randint(0, 99)
            else:
                status = rng.choices([s for s, _ in SHARE], [w for _, w in SHARE])[0]
                agent = rng.choice(pool) if status in ("succeeded", "failed") else None
                progress = 100 if status == "succeeded" else rng.randint(0, 99) if agent else 0
            started = created + timedelta(seconds=5) if agent else None
            finished = created + timedelta(seconds=60) if status in ("succeeded", "failed", "cancelled") else None
            title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} batch {i} {rng.randrange(16**6):06x}"
            rows.append((title, fold(title), "", status, progress, agent, "boom" if status == "failed" else "", created, started,
                         finished, first + i, created))
            if len(rows) == 50_000:
                _insert(connection, columns, rows)
                rows = []
        _insert(connection, columns, rows)
    # One running task per agent: the agents that run one are busy.
    Agent.objects.filter(pk__in=Task.objects.filter(status="running").values("agent_id")).update(status="busy")
    sequencing.recount(registry.windowed())
    connection.close()
    return {"tasks": n, "seconds": time.monotonic() - t0, "first": first, "last": first + n - 1}


def _insert(connection, columns, rows):
    if not rows:
        return
    table = "tasks_task"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    adapt = connection.ops.adapt_datetimefield_value
    prepared = [tuple(adapt(v) if hasattr(v, "tzinfo") else v for v in row) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                           prepared)


VIEWS = {
    "default": {"limit": 200, "current": True},
    "status: failed": {"status": ["failed"]},
    "status: queued+running": {"status": ["queued", "running"]},
    "agent": {"agent": "FIRST_AGENT"},
    "agent + failed": {"agent": "FIRST_AGENT", "status": ["failed"]},
    "q: common word": {"q": "invoice"},
    "q: rare text": {"q": "batch 99999 "},
    "q: no match": {"q": "zzqx"},
    "q: #id": {"q": "#MIDDLE"},
}


def time_views(repeat=20):
    """Server time of a view's sync read (`build_view_seed`: the window, `matched`, the counts
    and every agent, in one snapshot), per kind of view: p50 and p95 over `repeat` calls."""
    from django.db import connection

    from realtime import registry
    from realtime.snapshot import build_view_seed
    from tasks.models import Agent, Task

    entity = registry.windowed()
    first_agent = Agent.objects.order_by("pk").values_list("pk", flat=True).first()
    middle = Task.objects.order_by("-pk").values_list("pk", flat=True)[Task.objects.count() // 2]
    out = {}
    for label, raw in VIEWS.items():
        raw = {k: (first_agent if v == "FIRST_AGENT" else f"#{middle}" if v == "#MIDDLE" else v) for k, v in raw.items()}
        view = entity.views.parse(raw, entity.watched)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            seed = build_view_seed(view, None, None, True, list(view.sides))
            times.append(time.perf_counter() - t0)
        times.sort()
        out[label] = {"p50_ms": times[len(times) // 2] * 1000, "p95_ms": times[int(len(times) * 0.95) - 1 if repeat >= 20 else -1] * 1000,
                      "max_ms": times[-1] * 1000, "matched": seed.matched, "rows": len(seed.window)}
    connection.close()
    return out


def window_state(view):
    """The database's answer for a view: {"head", "tasks": {id: version} of its window, "counts"}."""
    from django.db import connection

    from realtime import counts, registry
    from realtime.snapshot import _snapshot_transaction

    entity = registry.windowed()
    parsed = entity.views.parse(view, entity.watched)
    try:
        with _snapshot_transaction():
            from realtime.models import Stream

            head = Stream.objects.get(pk=1).head
            per_status = counts.read(entity)[0]
            window = {str(t.pk): t.version for t in entity.views.newest(parsed, parsed.limit)}
            per_status["matched"] = entity.views.count(parsed, per_status)
        return {"head": head, "tasks": window, "counts": per_status,
                "agents": {str(k): v for k, v in entity.model._meta.apps.get_model("tasks", "Agent").objects.values_list("id", "version")}}
    finally:
        connection.close()

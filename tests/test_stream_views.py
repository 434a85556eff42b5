"""Views (docs/protocol.md, "Views"): a socket holds a window of the tasks, in-process through
the full ASGI stack. The server-level tests (daphne, uvicorn, Redis) are in
tests/test_views_servers.py; the windows' own rules in tests/test_windows.py."""
import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers

from tasks.models import Agent, Task
from tests.test_consumer import connect, cookie_for, receive  # noqa: F401 (fixtures below)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_layer(settings):
    settings.REALTIME_HEARTBEAT_INTERVAL = 30
    settings.REALTIME_HEARTBEAT_TIMEOUT = 10
    settings.REALTIME_PERIODIC_JOBS = []
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def cookie(staff_user):
    return cookie_for(staff_user)


def window_of(view):
    """The database's window and counts for a view (the rule from outside)."""
    tasks = Task.objects.all()
    if view.get("status") is not None:
        tasks = tasks.filter(status__in=view["status"])
    if view.get("agent") is not None:
        tasks = tasks.filter(agent_id=view["agent"])
    limit = view.get("limit") or 200
    counts = {s: Task.objects.filter(status=s).count() for s, _ in Task.Status.choices}
    counts["matched"] = tasks.count()
    return dict(tasks.order_by("-id").values_list("id", "version")[:limit]), counts


async def view_sync(comm, view, since=None, epoch=None):
    await comm.send_json_to({"type": "subscribe", "since": since, "epoch": epoch, "view": view})
    return await receive(comm, "sync")


async def test_a_view_sync_holds_the_window_and_the_counts(cookie):
    for i in range(12):
        await database_sync_to_async(Task.objects.create)(title=f"t{i}", status="queued" if i % 3 else "failed",
                                                            **({"finished_at": None} if i % 3 else {}))
    comm, _, _ = await connect(cookie)
    view = {"status": ["queued"], "limit": 5}
    sync = await view_sync(comm, view)
    window, counts = await database_sync_to_async(window_of)(view)
    assert {t["id"]: t["version"] for t in sync["tasks"]} == window
    assert [t["id"] for t in sync["tasks"]] == sorted(window, reverse=True)
    assert sync["counts"] == counts
    assert sync["view"] == {"status": ["queued"], "agent": None, "q": None, "limit": 5, "current": False}
    await comm.disconnect()


async def test_a_new_task_enters_and_pushes_the_oldest_out(cookie):
    for i in range(6):
        await database_sync_to_async(Task.objects.create)(title=f"t{i}")
    comm, _, _ = await connect(cookie)
    view = {"limit": 3}
    sync = await view_sync(comm, view)
    held = {t["id"]: t for t in sync["tasks"]}
    new = await database_sync_to_async(Task.objects.create)(title="newest")
    frame = await receive(comm, "events")
    assert frame["from"] == sync["seq"] + 1 and frame["to"] == new.version
    ops = {(i["op"], i["data"]["id"]) for i in frame["items"]}
    assert ("upsert", new.pk) in ops and ("delete", min(held)) in ops
    left = [i for i in frame["items"] if i["op"] == "delete"]
    assert left[0]["left"] is True
    assert frame["counts"]["queued"] == 7 and frame["counts"]["matched"] == 7
    await comm.disconnect()


# State plus ranges equals a fresh read, under every kind of write ------------------------------

import copy  # noqa: E402
import random  # noqa: E402

from realtime.client import StreamState  # noqa: E402
from realtime.models import Stream  # noqa: E402
from tests.test_windows import ascii_fold  # noqa: E402

STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
TITLES = ["Invoice 7", "invoice batch", "INVOICE run", "report", "Ärger", "ärger", "build #3", "deploy"]


class ViewClient(StreamState):
    """A socket that applies a view's sync and ranges by the protocol's client rules."""

    def __init__(self, comm, view):
        super().__init__(view)
        self.comm = comm

    async def subscribe(self, view=None):
        if view is not None:
            self.view = view
        await self.comm.send_json_to(self.subscribe_frame())

    async def pump(self, head, timeout=5):
        """Take frames until this client has applied everything up to `head`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.subscribing or self.last is None or self.last < head:
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"client at {self.last} never reached {head} (view {self.view})"
            frame = await self.comm.receive_json_from(remaining)
            if frame["type"] == "error":
                raise AssertionError(f"error frame: {frame}")
            assert "part" not in frame  # small tables: one frame
            if frame["type"] == "ping":
                await self.comm.send_json_to({"type": "pong", "id": frame["id"]})
            if self.apply(frame):
                await self.subscribe()


def defined_window(view):
    """The window and counts the protocol defines, computed here from the raw rows."""
    rows = list(Task.objects.values_list("id", "version", "status", "agent_id", "title"))
    q = (view.get("q") or "").strip()

    def matches(row_id, status, agent, title):
        if view.get("status") is not None and status not in view["status"]:
            return False
        if view.get("agent") is not None and agent != view["agent"]:
            return False
        if q.startswith("#") and q[1:].isdigit():
            return row_id == int(q[1:])
        return not q or ascii_fold(q) in ascii_fold(title)

    matching = sorted(((r[0], r[1]) for r in rows if matches(r[0], *r[2:])), reverse=True)
    counts = {s: sum(1 for r in rows if r[2] == s) for s in STATUSES}
    counts["matched"] = len(matching)
    running = {r[0]: r[1] for r in rows if r[2] == "running"}
    agents = dict(Agent.objects.values_list("id", "version"))
    head = Stream.objects.get(pk=1).head
    return dict(matching[:view.get("limit") or 200]), counts, running, agents, head


def random_write(rng):
    """One write of a random kind: every path sequencing numbers."""
    tasks = list(Task.objects.order_by("pk"))
    agents = list(Agent.objects.order_by("pk"))
    kind = rng.choice(["create", "save", "rename", "update", "bulk_create", "bulk_update", "delete", "delete_many",
                       "agent", "agent_delete"])
    if kind == "create" or not tasks:
        status = rng.choice(STATUSES)
        agent = rng.choice(agents) if status == "running" and agents else None
        Task.objects.create(title=rng.choice(TITLES), status=status if status != "running" or agent else "queued", agent=agent)
    elif kind == "save":
        task = rng.choice(tasks)
        task.status = rng.choice(["queued", "succeeded", "failed", "cancelled"])
        task.agent = None
        task.progress = rng.randint(0, 100)
        task.save()
    elif kind == "rename":  # into and out of a search
        task = rng.choice(tasks)
        task.title = rng.choice(TITLES)
        task.save(update_fields=["title"])
    elif kind == "update":
        chosen = [t.pk for t in rng.sample(tasks, min(len(tasks), rng.randint(1, 4)))]
        if rng.random() < 0.5:
            Task.objects.filter(pk__in=chosen).update(status=rng.choice(["failed", "cancelled", "queued"]), agent=None)
        else:
            Task.objects.filter(pk__in=chosen).update(title=rng.choice(TITLES))
    elif kind == "bulk_create":
        Task.objects.bulk_create([Task(title=rng.choice(TITLES)) for _ in range(rng.randint(1, 5))])
    elif kind == "bulk_update":
        chosen = rng.sample(tasks, min(len(tasks), 3))
        for task in chosen:
            task.title = rng.choice(TITLES)
        Task.objects.bulk_update(chosen, ["title"])
    elif kind == "delete":
        rng.choice(tasks).delete()
    elif kind == "delete_many":
        Task.objects.filter(pk__in=[t.pk for t in rng.sample(tasks, min(len(tasks), 3))]).delete()
    elif kind == "agent" or not agents:
        if agents and rng.random() < 0.5:
            agent = rng.choice(agents)
            agent.hostname = f"h{rng.randint(0, 99)}"
            agent.save()
        else:
            Agent.objects.create(name=f"agent-{rng.randint(0, 10**9)}")
    else:
        rng.choice(agents).delete()  # its running task goes back to the queue (the offline policy)


@pytest.mark.parametrize("seed", [20261206, 7, 1234])
async def test_state_plus_ranges_equals_a_fresh_read_under_random_writes(cookie, seed):
    """Zulip's strongest test, for views: random writes of every kind against random views;
    after every step each socket's window, counts, agents and running tasks equal what the
    database holds at that number (docs/protocol.md, "Views", the rule from outside)."""
    rng = random.Random(seed)
    await database_sync_to_async(lambda: [Agent.objects.create(name=f"a{i}") for i in range(3)])()
    for _ in range(25):
        await database_sync_to_async(random_write)(rng)
    agent_ids = await database_sync_to_async(lambda: list(Agent.objects.values_list("pk", flat=True)))()
    views = [
        {"limit": 4},
        {"limit": 4},  # the same view: one window shared by two sockets
        {"status": ["queued", "running"], "limit": 3, "current": True},
        {"status": ["failed", "cancelled"], "limit": 2},
        {"q": "invoice", "limit": 3},
        {"agent": agent_ids[0], "limit": 5},
        {"q": "ÄRGER", "status": ["queued", "failed"], "limit": 2},
    ]
    clients = []
    for view in views:
        comm, _, _ = await connect(cookie)
        clients.append(ViewClient(comm, view))
        await clients[-1].subscribe()
    for step in range(80):
        await database_sync_to_async(random_write)(rng)
        if step % 9 == 4:  # a view changed mid-stream
            client = rng.choice(clients)
            await client.subscribe(rng.choice(views[2:] + [{"q": f"#{rng.randint(1, 60)}"}]))
        if step % 13 == 7:  # away and back: the resume starts from where it was
            client = rng.choice(clients)
            await client.comm.disconnect()
            client.comm, _, _ = await connect(cookie)
            await client.subscribe()
            if step % 26 == 7:  # and a twin at the same position: its sync may be the first one's
                twin = ViewClient(None, client.view)
                twin.__dict__.update(copy.deepcopy({k: v for k, v in client.__dict__.items() if k != "comm"}))
                twin.comm, _, _ = await connect(cookie)
                await twin.subscribe()
                clients.append(twin)
        for client in clients:
            window, counts, running, agents, head = await database_sync_to_async(defined_window)(client.view)
            await client.pump(head)
            assert {i: r["version"] for i, r in client.tasks.items()} == window, (step, client.view)
            assert client.counts == counts, (step, client.view)
            assert {i: r["version"] for i, r in client.agents.items()} == agents, step
            if client.view.get("current"):
                assert {i: r["version"] for i, r in client.current.items()} == running, step
    for client in clients:
        await client.comm.disconnect()


# A storm: one read per position, not per socket ----------------------------------------------


@pytest.fixture
def view_reads(monkeypatch):
    """The statements that read the stream, the tasks or the agents (a view's seed), from any
    thread; an access check's session and user reads are not among them."""
    from django.db.backends import utils

    reads, execute = [], utils.CursorWrapper.execute

    def counted(self, sql, params=None):
        if any(table in sql for table in ("realtime_stream", "tasks_task", "tasks_agent", "realtime_change")):
            reads.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(utils.CursorWrapper, "execute", counted)
    return reads


async def test_sockets_claiming_one_position_share_one_read_until_the_view_moves(cookie, view_reads, monkeypatch):
    """A reconnect storm: a view's sync built for one socket answers each socket that claims
    the same position (since, epoch, fp) within SHARED_SYNC_SECONDS, with no read of its own
    (realtime/consumers.py _join_shared); another position, a range, or an older answer reads."""
    from realtime import consumers

    for i in range(5):
        await database_sync_to_async(Task.objects.create)(title=f"t{i}")
    view = {"limit": 3}
    first, _, _ = await connect(cookie)
    fresh = await view_sync(first, view)
    assert view_reads
    second, _, _ = await connect(cookie)
    view_reads.clear()
    assert await view_sync(second, view) == fresh
    assert view_reads == []

    claim = {"since": fresh["seq"], "epoch": fresh["epoch"]}
    third, _, _ = await connect(cookie)
    view_reads.clear()
    resumed = await view_sync(third, view, **claim)
    assert view_reads, "another claim reads"
    fourth, _, _ = await connect(cookie)
    view_reads.clear()
    assert await view_sync(fourth, view, **claim) == resumed
    assert view_reads == []

    new = await database_sync_to_async(Task.objects.create)(title="newest")
    for comm in (first, second, third, fourth):
        assert (await receive(comm, "events"))["to"] == new.version
    fifth, _, _ = await connect(cookie)
    view_reads.clear()
    moved = await view_sync(fifth, view)
    assert view_reads, "a range ends the shared answer"
    assert moved["seq"] == new.version and new.pk in {t["id"] for t in moved["tasks"]}

    monkeypatch.setattr(consumers, "SHARED_SYNC_SECONDS", 0.0)
    sixth, _, _ = await connect(cookie)
    view_reads.clear()
    assert await view_sync(sixth, view) == moved
    assert view_reads, "an answer older than SHARED_SYNC_SECONDS is read again"
    window, counts = await database_sync_to_async(window_of)(view)
    assert {t["id"]: t["version"] for t in moved["tasks"]} == window and moved["counts"] == counts
    for comm in (first, second, third, fourth, fifth, sixth):
        await comm.disconnect()


async def test_sockets_asking_at_once_for_a_view_nobody_holds_read_its_window_once(cookie, monkeypatch):
    """One socket reads a view's window that the process does not keep yet; the others that
    ask meanwhile wait for it and join the window it made (realtime/reads.py)."""
    from realtime import snapshot

    reads, read = [], snapshot._window_and_matched

    def counted(*args, **kwargs):
        reads.append(args)
        return read(*args, **kwargs)

    monkeypatch.setattr(snapshot, "_window_and_matched", counted)
    for i in range(5):
        await database_sync_to_async(Task.objects.create)(title=f"t{i}")
    view = {"limit": 3, "current": True}
    comms = [(await connect(cookie))[0] for _ in range(8)]
    for since, comm in enumerate(comms):  # eight positions: no answer can be shared
        await comm.send_json_to({"type": "subscribe", "since": since, "epoch": None, "view": view})
    syncs = [await receive(comm, "sync") for comm in comms]
    assert sorted(view_read[1].side for view_read in reads) == [False, True]  # the window, the running tasks
    window, counts = await database_sync_to_async(window_of)(view)
    for sync in syncs:
        assert {t["id"]: t["version"] for t in sync["tasks"]} == window and sync["counts"] == counts
    for comm in comms:
        await comm.disconnect()

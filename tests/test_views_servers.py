"""Views against real server processes (daphne and uvicorn), on Redis: several processes each
holding different views, a resume after missed ranges, a view changed mid-stream, the refusal
of a whole-table subscribe over REALTIME_MAX_STREAM_ROWS, and retention while views are open.
Every client must end with exactly the database's window and counts (docs/protocol.md)."""
import asyncio
import random
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from tasks.models import Agent, Task
from tests.support.stream import StreamClient
from tests.test_stream_views import defined_window, random_write

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

FAST = {"REALTIME_HEARTBEAT_INTERVAL": 1, "REALTIME_HEARTBEAT_TIMEOUT": 3}
KINDS = ["daphne", "uvicorn"]


def head():
    from realtime.snapshot import stream_position

    return stream_position()[1]


async def converged(clients, timeout=20):
    """Wait until every client holds the database's window, counts and agents at the head."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        target = await sync_to_async(head)()
        expected = [await sync_to_async(defined_window)(c.view) for c in clients]
        ok = [c.last == target and not c.subscribing
              and {i: r["version"] for i, r in c.tasks.items()} == window and c.counts == counts
              and {i: r["version"] for i, r in c.agents.items()} == agents
              for c, (window, counts, _, agents, _) in zip(clients, expected)]
        if all(ok):
            return
        assert loop.time() < deadline, (
            f"{ok.count(False)} of {len(clients)} clients differ from the database at {target}: "
            + "; ".join(f"{c.view} last={c.last} {sorted(c.tasks)} vs {sorted(e[0])} {c.counts} vs {e[1]}"
                        for c, e, good in zip(clients, expected, ok) if not good)[:2000])
        await asyncio.sleep(0.2)


@pytest.fixture
def publish_through(settings):
    """Make this test process publish its writes through a Redis, as any worker would."""
    from channels.layers import channel_layers

    def use(redis):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                               "CONFIG": {"hosts": [redis.url], "prefix": settings.REDIS_PREFIX}}}
        channel_layers.backends.clear()

    yield use
    channel_layers.backends.clear()


def seed_tasks(n, rng):
    for i in range(3):
        Agent.objects.get_or_create(name=f"agent-{i}")
    for _ in range(n):
        random_write(rng)


@pytest.mark.parametrize("kind", KINDS)
async def test_processes_each_with_their_own_views_stay_exact(daphne, redis_server, session_cookie, publish_through, kind):
    publish_through(redis_server)
    rng = random.Random(kind)
    await sync_to_async(seed_tasks)(40, rng)
    agent = await sync_to_async(lambda: Agent.objects.order_by("pk").first().pk)()
    a = daphne(kind=kind, REDIS_URL=redis_server.url, **FAST)
    b = daphne(kind=kind, REDIS_URL=redis_server.url, **FAST)
    views = {a: [{"limit": 5}, {"status": ["queued", "running"], "limit": 4, "current": True}, {"q": "invoice", "limit": 3}],
             b: [{"limit": 5}, {"status": ["failed", "cancelled"], "limit": 2}, {"agent": agent, "limit": 6}]}
    clients = [StreamClient(server.ws, session_cookie, server.http, view=view).start()
               for server, server_views in views.items() for view in server_views]
    try:
        await converged(clients)
        for step in range(60):  # writes from this process reach both through Redis
            await sync_to_async(random_write)(rng)
            if step == 20:  # a view changed mid-stream, on each process
                await clients[0].change_view({"status": ["succeeded"], "limit": 3})
                await clients[4].change_view({"q": "REPORT", "limit": 2})
                # Subscribes are answered at most once a second per socket (the first sync
                # was just now): let the new views' syncs arrive, then go on writing.
                assert all(await asyncio.gather(*(c.wait_for(lambda c: not c.subscribing, 5) for c in clients)))
                ranges_before = [c.ranges for c in clients]
            if step % 10 == 0:
                await asyncio.sleep(0.05)
        await converged(clients)
        # Live: the changes came as ranges, not as syncs after the head check noticed them.
        after = [c.ranges - before for c, before in zip(clients, ranges_before)]
        assert all(n >= 30 for n in after), (after, [c.syncs for c in clients])
        assert all(c.syncs <= 3 for c in clients), [c.syncs for c in clients]
        assert all(not c.errors for c in clients), [c.errors for c in clients]
    finally:
        for client in clients:
            await client.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_view_resumes_after_missing_ranges(daphne, redis_server, session_cookie, publish_through, kind):
    publish_through(redis_server)
    rng = random.Random(1)
    await sync_to_async(seed_tasks)(20, rng)
    server = daphne(kind=kind, REDIS_URL=redis_server.url, **FAST)
    client = StreamClient(server.ws, session_cookie, server.http, view={"status": ["queued"], "limit": 4}).start()
    try:
        await converged([client])
        await client.stop()  # away: the socket is gone, the client keeps its window and position
        since, fp = client.last, client.fp
        for _ in range(30):
            await sync_to_async(random_write)(rng)
        client.stopped = False
        client.start()
        await converged([client])
        assert client.connects == 2 and client.last > since and fp
    finally:
        await client.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_table_subscribe_over_the_row_cap_is_refused_and_views_still_work(daphne, session_cookie, kind):
    await sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"t{i}") for i in range(30)]))()
    server = daphne(kind=kind, REALTIME_MAX_STREAM_ROWS=20, **FAST)
    whole = StreamClient(server.ws, session_cookie, server.http).start()
    windowed = StreamClient(server.ws, session_cookie, server.http, view={"limit": 10}).start()
    try:
        assert await whole.wait_for(lambda c: c.errors, 10), "the whole-table subscribe was not refused"
        assert whole.errors[0]["code"] == "view_required" and "REALTIME_MAX_STREAM_ROWS" in whole.errors[0]["message"]
        assert whole.last is None and whole.tasks == {}  # nothing was built or sent
        await converged([windowed])
        assert len(windowed.tasks) == 10 and windowed.counts["matched"] == 30
    finally:
        await whole.stop()
        await windowed.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_retention_deletes_old_tasks_while_views_are_open(daphne, session_cookie, kind):
    def old_and_new():
        for i in range(24):
            task = Task.objects.create(title=f"task {i}")
            status = ["succeeded", "failed", "queued"][i % 3]
            if status != "queued":
                finished = timezone.now() - timedelta(days=60 if i < 15 else 1)
                Task.objects.filter(pk=task.pk).update(status=status, finished_at=finished)

    await sync_to_async(old_and_new)()
    views = [{"limit": 6}, {"status": ["succeeded", "failed"], "limit": 20}]
    server = daphne(kind=kind, TASK_RETENTION_DAYS=30, **FAST)
    clients = [StreamClient(server.ws, session_cookie, server.http, view=view).start() for view in views]
    try:
        # The server's periodic job retires the ten old finished tasks on its own.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while await sync_to_async(Task.objects.count)() != 14:
            assert loop.time() < deadline, "retention never ran"
            await asyncio.sleep(0.3)
        await converged(clients)
        assert clients[1].counts["matched"] == 6
    finally:
        for client in clients:
            await client.stop()

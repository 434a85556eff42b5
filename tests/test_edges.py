"""The stream at the edges of its data: outsized rows, one statement changing thousands of rows,
mass deletions while a client is away. Real daphne processes on one Redis; clients apply the
stream by docs/protocol.md's rules. Every test ends with every client equal to the database and no
socket closed by the server, and no frame larger than REALTIME_MAX_SEND_BYTES.
"""
import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tasks.models import TEXT_LIMIT, Agent, Task
from tests.support.faults import crash_lines, describe_difference, report, settle
from tests.support.stream import ResilientStreamClient
from tests.test_faults import layer_config

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ORIGIN = "http://127.0.0.1"
SEND_LIMIT = 65536  # small, so that these tests cut frames often
# Heartbeats stay on (a ping every 2 s), with a timeout long enough that the test's own
# clients, which share a process with 150,000 deletions, are not closed for being starved
# (10 s was not, once, on a loaded machine: a watching client's pong came late, 4008).
# These clients take the whole stream (protocol v1) of a table of up to 150,000 rows: past the
# default REALTIME_MAX_STREAM_ROWS a dashboard would have to use a view.
SERVER_ENV = {"REALTIME_HEARTBEAT_INTERVAL": 2, "REALTIME_HEARTBEAT_TIMEOUT": 30, "REALTIME_MAX_SEND_BYTES": SEND_LIMIT,
              "REALTIME_MAX_STREAM_ROWS": 200_000}
MEGA_ERROR = "traceback line\n" * 100_000  # 1.5 MB


class Edge:
    """Two servers on one Redis, and clients spread over them."""

    def __init__(self, daphne, redis, cookie, kind):
        self.servers = [daphne(REDIS_URL=redis.url, kind=kind, **SERVER_ENV) for _ in range(2)]
        self.cookie = cookie
        self.clients = []

    async def connect(self, count):
        clients = [
            ResilientStreamClient(self.servers[i % 2].ws, self.cookie, ORIGIN, idle_grace=10).start()
            for i in range(count)
        ]
        self.clients += clients
        ok = await asyncio.gather(*(c.wait_for(lambda c: c.last is not None, 60) for c in clients))
        assert all(ok), f"{ok.count(False)} of {count} clients did not sync"
        return clients

    async def check(self, clients=None, timeout=60):
        """Every client equals the database, was never closed, and got no frame over the limit."""
        clients = self.clients if clients is None else clients
        bad, expected = await settle(clients, timeout)
        assert not bad, "clients differ from the database:\n" + "\n".join(describe_difference(c, expected) for c in bad[:5])
        for client in clients:
            assert client.close_codes == [] and client.connects == 1, f"closed: {client.close_codes}"
            assert client.largest_frame <= SEND_LIMIT, f"a frame of {client.largest_frame} bytes"
        for server in self.servers:
            assert server.proc.poll() is None and not crash_lines(server.log()), server.log()[-3000:]

    async def close(self):
        await asyncio.gather(*(c.stop() for c in self.clients), return_exceptions=True)


# Every edge on both supported ASGI servers: daphne refuses to send a frame over 1 MiB, uvicorn
# has no such limit of its own; either way the server's own frames stay under the limit.
@pytest.fixture(params=["daphne", "uvicorn"])
async def edge(request, daphne, redis_server, settings, session_cookie):
    settings.CHANNEL_LAYERS = layer_config(redis_server.url)  # the test's writes publish to the servers
    edge = Edge(daphne, redis_server, session_cookie, request.param)
    yield edge
    await edge.close()
    from django.db import connections

    await sync_to_async(connections.close_all)()


# Where long text enters: refused with a clear answer -------------------------------------------


def test_a_megabyte_error_is_refused_by_the_admin_and_the_api(staff_user):
    task = Task.objects.create(title="t")
    admin = Client()
    admin.force_login(staff_user)
    form = {"title": "t", "description": "", "status": "failed", "progress": 0, "agent": "", "error": MEGA_ERROR}
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200, "the form is shown again with its error"
    assert f"Ensure this value has at most {TEXT_LIMIT} characters" in response.content.decode()
    assert Task.objects.get(pk=task.pk).error == ""

    from tasks import tokens

    agent = Agent.objects.create(name="bot")
    _, secret = tokens.issue(agent)
    Task.objects.filter(pk=task.pk).update(status="running", agent=agent)
    bot = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", json.dumps({"status": "failed", "error": MEGA_ERROR}),
                         content_type="application/json")
    assert response.status_code == 400 and "error" in response.json(), response.content[:300]
    assert Task.objects.get(pk=task.pk).status == "running"


# What the ORM lets through travels bounded --------------------------------------------------------


async def test_a_megabyte_error_saved_through_the_orm_reaches_every_dashboard_as_an_excerpt(edge):
    clients = await edge.connect(5)

    def write():
        task = Task.objects.create(title="big", status="failed", error=MEGA_ERROR)
        task.error = MEGA_ERROR + "more"
        task.save()
        return task.pk

    pk = await sync_to_async(write)()
    await edge.check()
    for client in clients:
        row = client.tasks[pk]
        assert row["truncated"] == ["error"] and len(row["error"]) == 2000
    late = await edge.connect(1)  # a reset carrying the row works too
    await edge.check(late)
    report("edge_megabyte_row", clients=6, largest_frame=max(c.largest_frame for c in edge.clients))


async def test_6000_rows_created_then_updated_by_one_statement(edge):
    clients = await edge.connect(6)
    started = time.monotonic()

    def write():
        Task.objects.bulk_create([Task(title=f"bulk {i:05} " + "x" * 150) for i in range(6000)])
        return Task.objects.filter(title__startswith="bulk ").update(progress=42, status="running")

    assert await sync_to_async(write)() == 6000
    await edge.check()
    assert all(sum(1 for r in c.tasks.values() if r["progress"] == 42) == 6000 for c in clients)
    report("edge_6000_rows", clients=len(clients), seconds=time.monotonic() - started,
           events=sum(c.events for c in clients) // len(clients),
           largest_frame=max(c.largest_frame for c in clients))


async def test_150000_rows_deleted_while_clients_watch_and_one_is_away(edge):
    def fill():
        Task.objects.bulk_create([Task(title=f"r{i}") for i in range(150_000)], batch_size=5000)

    await sync_to_async(fill)()
    watching = await edge.connect(2)
    away = (await edge.connect(1))[0]
    await edge.check()
    assert all(len(c.tasks) == 150_000 for c in edge.clients)
    # The third client goes away, remembering where it was; it comes back after the deletion.
    edge.clients.remove(away)
    await away.stop()
    since, epoch = away.last, away.epoch
    started = time.monotonic()
    deleted, _ = await sync_to_async(lambda: Task.objects.all().delete())()
    assert deleted == 150_000
    await edge.check(watching, timeout=120)
    watched = time.monotonic() - started
    back = ResilientStreamClient(edge.servers[1].ws, edge.cookie, ORIGIN, idle_grace=10)
    back.tasks, back.agents, back.last, back.epoch = away.tasks, away.agents, since, epoch
    edge.clients.append(back.start())
    await edge.check([back], timeout=120)
    assert back.resets == 0 and back.parts_received > 1, "a delta of 150,000 deletions, in parts"
    report("edge_150000_deleted", watch_seconds=watched, away_parts=back.parts_received,
           largest_frame=max(c.largest_frame for c in edge.clients))

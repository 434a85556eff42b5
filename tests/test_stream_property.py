"""Initial state plus the events since equals a fresh fetch, for random interleavings.

A writer thread (its own database connection) applies a random sequence of changes while a
client subscribes at a random moment, possibly resuming from an earlier sync. Whatever the
interleaving, the client that applies the sync and every later event by the protocol's rules
ends equal to the database, without a gap.
"""
import asyncio
import itertools
import threading
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections, connection
from django.test import Client
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from dashboard_site.asgi import application
from realtime.client import StreamState
from tasks.models import Agent, Task
from tests.support.stream import database_rows

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_NUMBERS = itertools.count()
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create_task"), st.integers(0, 100)),
        st.tuples(st.just("update_task"), st.integers(0, 1000), st.sampled_from(STATUSES), st.integers(0, 100)),
        st.tuples(st.just("delete_task"), st.integers(0, 1000)),
        st.tuples(st.just("assign"), st.integers(0, 1000), st.integers(0, 1000)),
        st.tuples(st.just("create_agent"),),
        st.tuples(st.just("delete_agent"), st.integers(0, 1000)),
        st.tuples(st.just("bulk_progress"), st.integers(0, 100)),
    ),
    min_size=1,
    max_size=25,
)


def pick(queryset, index):
    ids = list(queryset.values_list("pk", flat=True))
    return queryset.get(pk=ids[index % len(ids)]) if ids else None


def apply(op):
    kind = op[0]
    if kind == "create_task":
        Task.objects.create(title=f"task {op[1]}", progress=op[1])
    elif kind == "update_task" and (task := pick(Task.objects.all(), op[1])):
        task.status, task.progress = op[2], 100 if op[2] == "succeeded" else op[3]
        if op[2] == "queued":
            task.agent = None
        task.save()
    elif kind == "delete_task" and (task := pick(Task.objects.all(), op[1])):
        task.delete()
    elif kind == "assign" and (task := pick(Task.objects.all(), op[1])) and (agent := pick(Agent.objects.all(), op[2])):
        task.agent, task.status = agent, "running"
        task.save()
    elif kind == "create_agent":
        Agent.objects.create(name=f"agent {next(AGENT_NUMBERS)}")
    elif kind == "delete_agent" and (agent := pick(Agent.objects.all(), op[1])):
        agent.delete()
    elif kind == "bulk_progress":
        Task.objects.filter(status="running").update(progress=op[1])


def run_writer(ops, started):
    try:
        for index, op in enumerate(ops):
            if index == 1:
                started.set()
            apply(op)
    finally:
        started.set()
        connection.close()


async def scenario(cookie, before, during, resume):
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)]
    client = StreamState()
    await sync_to_async(lambda: [apply(op) for op in before], thread_sensitive=False)()

    async def session(since, epoch, writer_ops):
        comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
        assert (await comm.connect())[0]
        started = threading.Event()
        writer = asyncio.get_running_loop().run_in_executor(None, run_writer, writer_ops, started)
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 30), "the writer did not start"
        await comm.send_json_to({"type": "subscribe", "since": since, "epoch": epoch})
        await asyncio.wait_for(writer, 60)  # frames queue up meanwhile; the server works concurrently
        expected = await sync_to_async(database_rows, thread_sensitive=False)()
        syncs = client.syncs
        end = time.monotonic() + 30
        while client.syncs == syncs or (client.tasks, client.agents) != expected:
            assert time.monotonic() < end, f"the client did not equal the database within 30 s (syncs {client.syncs})"
            frame = await comm.receive_json_from(5)
            if frame["type"] == "sync":
                client.apply_sync(frame)
            elif frame["type"] in ("event", "events"):
                assert all(client.apply_event(e) for e in frame.get("items", [frame])), "a gap in the stream"
        await comm.disconnect()

    half = len(during) // 2
    await session(None, None, during[:half] if resume else during)
    if resume:  # come back later and resume from where the client left off
        await sync_to_async(lambda: [apply(op) for op in during[half:half + 3]], thread_sensitive=False)()
        await session(client.last, client.epoch, during[half + 3:])
    return client


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(before=operations, during=operations, resume=st.booleans())
def test_sync_plus_events_equals_a_fresh_fetch(staff_user, settings, before, during, resume):
    settings.REALTIME_PERIODIC_JOBS = []
    client = Client()
    client.force_login(staff_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    channel_layers.backends.clear()  # each example runs on a new event loop
    close_old_connections()
    result = async_to_sync(scenario)(cookie, before, during, resume)
    assert result.gaps == 0
    assert (result.tasks, result.agents) == database_rows()

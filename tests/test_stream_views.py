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

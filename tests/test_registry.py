"""The entity registry (realtime/registry.py): a model needs nothing but its registration to be
synced, streamed, deleted and resumed; realtime/ never imports the apps that register; and
every event a write publishes is in the protocol's vocabulary."""
import ast
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client

from dashboard_site.asgi import application
from realtime import protocol, publish, registry
from tasks.models import Agent, Task
from tests.streamed.models import Note

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_layer(settings):
    settings.REALTIME_PERIODIC_JOBS = []
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def frames_until(comm, predicate, timeout=3, within=30):
    """Frames (answering pings) until one satisfies `predicate`; returns them all. Each frame
    must come within `timeout` seconds, the one wanted within `within`."""
    seen = []
    end = time.monotonic() + within
    while True:
        assert time.monotonic() < end, f"no such frame within {within} s: {seen[-5:]}"
        frame = await comm.receive_json_from(timeout)
        seen.append(frame)
        if predicate(frame):
            return seen


def events_in(frames):
    return [e for f in frames for e in (f["items"] if f["type"] == "events" else [f] if f["type"] == "event" else [])]


# A test-only entity --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_registered_model_is_synced_streamed_deleted_and_resumed(staff_user):
    client = Client()
    await database_sync_to_async(client.force_login)(staff_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    first = await database_sync_to_async(Note.objects.create)(text="hello")
    comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)])
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    [sync] = await frames_until(comm, lambda f: f["type"] == "sync")
    assert [n["text"] for n in sync["notes"]] == ["hello"] and sync["deleted"]["notes"] == []
    assert "tasks" in sync and "agents" in sync

    second = await database_sync_to_async(Note.objects.create)(text="live")
    [event] = events_in(await frames_until(comm, lambda f: f["type"] in ("event", "events")))
    assert (event["entity"], event["op"], event["data"]["text"]) == ("note", "upsert", "live")
    second_id = second.pk
    await database_sync_to_async(second.delete)()
    [event] = events_in(await frames_until(comm, lambda f: f["type"] in ("event", "events")))
    assert (event["entity"], event["op"], event["data"]) == ("note", "delete", {"id": second_id})

    # Away, then back: the resume carries the note's change and its deletion.
    since, epoch = event["seq"], sync["epoch"]
    await database_sync_to_async(Note.objects.filter(pk=first.pk).update)(text="changed")
    third = await database_sync_to_async(Note.objects.create)(text="short-lived")
    third_id = third.pk
    await database_sync_to_async(third.delete)()
    await frames_until(comm, lambda f: f["type"] in ("event", "events") and events_in([f])[-1]["op"] == "delete")
    await comm.send_json_to({"type": "subscribe", "since": since, "epoch": epoch})
    [delta] = [f for f in await frames_until(comm, lambda f: f["type"] == "sync")][-1:]
    assert delta["reset"] is False
    assert [n["text"] for n in delta["notes"]] == ["changed"] and delta["deleted"]["notes"] == [third_id]
    await comm.disconnect()


@pytest.mark.django_db
def test_a_sequenced_model_that_is_not_registered_fails_loudly_on_its_first_write():
    registry.unregister(Note)
    try:
        with pytest.raises(ImproperlyConfigured, match="not registered with the stream"):
            with transaction.atomic():  # a failed save spoils its transaction, as in Django
                Note.objects.create(text="x")
        assert not Note.objects.exists()
    finally:
        from tests.streamed.apps import note_row

        registry.register(Note, entity="note", serializer=note_row)


def test_an_entity_name_is_registered_once():
    with pytest.raises(ImproperlyConfigured, match="taken by Task"):
        registry.register(Note, entity="task", serializer=lambda n: {})
    assert registry.entity_of(Note).name == "note"


# realtime/ imports no app -------------------------------------------------------------------


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_realtime_never_imports_the_tasks_app():
    offenders = {
        str(path.relative_to(ROOT)): name
        for path in (ROOT / "realtime").rglob("*.py")
        for name in imports_of(path)
        if name == "tasks" or name.startswith("tasks.")
    }
    assert offenders == {}


def test_publishing_does_not_import_the_hub():
    assert not [n for n in imports_of(ROOT / "realtime" / "publish.py") if "hub" in n]
    source = (ROOT / "realtime" / "publish.py").read_text()
    assert "from . import hub" not in source and "from .hub" not in source


# The vocabulary -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_event_a_write_publishes_is_in_the_vocabulary(monkeypatch, django_capture_on_commit_callbacks):
    published = []
    monkeypatch.setattr(publish, "_send", published.append)
    with django_capture_on_commit_callbacks(execute=True):
        agent = Agent.objects.create(name="a")
        task = Task.objects.create(title="t", status="running", agent=agent)
        task.progress = 5
        task.save(update_fields=["progress"])
        Task.objects.filter(pk=task.pk).update(progress=6)
        Task.objects.bulk_create([Task(title="b1"), Task(title="b2")])
        Note.objects.create(text="n")
        Note.objects.all().delete()
        agent.delete()
        Task.objects.all().delete()
    events = [e for message in published for e in message["events"]]
    assert len(events) >= 10
    names = set(registry.names())
    for event in events:
        # Changes kept in the history carry their fingerprint (realtime/events.py); the rest not.
        kept = registry.by_name(event["entity"]).history
        assert set(event) == {"type", "seq", "entity", "op", "data", *(["fp"] if kept else [])}, event
        assert not kept or (isinstance(event["fp"], str) and len(event["fp"]) == 10)
        assert event["type"] == protocol.EVENT and event["entity"] in names and event["op"] in protocol.OPS
        assert isinstance(event["seq"], int) and isinstance(event["data"]["id"], int)
        if event["op"] == protocol.UPSERT:
            assert event["data"]["version"] == event["seq"]
        else:
            assert event["data"] == {"id": event["data"]["id"]}
    assert all(m["type"] == protocol.LAYER_CHANGES for m in published)
    assert sorted(e["seq"] for e in events) == [e["seq"] for e in sorted(events, key=lambda e: e["seq"])]

"""The consumer and hub in-process, through the full ASGI stack (auth, origin check, routing)."""
import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from dashboard_site.asgi import application
from realtime import hub as hub_module
from realtime.client import StreamState
from realtime.hub import get_hub
from realtime.models import Stream, Tombstone
from tasks.models import Agent, Task
from tests.support.stream import database_rows

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def fresh_layer(settings):
    """Each test runs on its own event loop: give it its own in-process layer and hub."""
    settings.REALTIME_HEARTBEAT_INTERVAL = 30
    settings.REALTIME_HEARTBEAT_TIMEOUT = 10
    settings.REALTIME_PERIODIC_JOBS = []  # no liveness sweep writing in the middle of a test
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def cookie_for(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def cookie(staff_user):
    return cookie_for(staff_user)


async def connect(cookie, origin=ORIGIN):
    headers = [origin] + ([(b"cookie", cookie)] if cookie else [])
    comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
    before = len(get_hub().members)
    connected, code = await comm.connect()
    # The handshake is accepted before access is checked: wait until the socket joined the
    # hub or was told why not (its closing frames are in the output queue).
    deadline = asyncio.get_running_loop().time() + 5
    while connected and len(get_hub().members) <= before and comm.output_queue.empty():
        assert asyncio.get_running_loop().time() < deadline, "the socket neither joined nor was refused"
        await asyncio.sleep(0.005)
    return comm, connected, code


WITHIN = 30  # seconds a helper below waits for what it wants, however many other frames come


async def receive(comm, kind=None, timeout=3):
    """The next frame (of `kind`, skipping others), answering pings on the way."""
    end, skipped = time.monotonic() + WITHIN, []
    while True:
        assert time.monotonic() < end, f"no {kind} frame within {WITHIN} s, only {skipped[-5:]}"
        frame = await comm.receive_json_from(timeout)
        if kind is None or frame["type"] == kind:
            return frame
        skipped.append(frame)


async def next_events(comm, count, timeout=3):
    """The next `count` events, whether they came one per frame or batched in `events`."""
    events = []
    end = time.monotonic() + WITHIN
    while len(events) < count:
        assert time.monotonic() < end, f"{len(events)} of {count} events within {WITHIN} s: {events}"
        frame = await comm.receive_json_from(timeout)
        if frame["type"] == "event":
            events.append(frame)
        elif frame["type"] == "events":
            events.extend(frame["items"])
    assert len(events) == count, events
    return events


async def subscribe(comm, since=None, epoch=None):
    await comm.send_json_to({"type": "subscribe", "since": since, "epoch": epoch})
    return await receive(comm, "sync")


async def closed_with(comm, timeout=3):
    end = time.monotonic() + WITHIN
    while True:
        assert time.monotonic() < end, f"the socket was not closed within {WITHIN} s"
        message = await comm.receive_output(timeout)
        if message["type"] == "websocket.close":
            return message.get("code")


def make_task(title="t", **fields):
    return Task.objects.create(title=title, **fields)


# Authentication and origin ------------------------------------------------------------------


async def test_anonymous_socket_is_accepted_then_closed_4501():
    comm, connected, _ = await connect(None)
    assert connected
    assert await closed_with(comm) == 4501


async def test_user_without_permission_is_closed_4503(django_user_model):
    user = await database_sync_to_async(django_user_model.objects.create_user)("viewer", password="x-pass-123456")
    comm, connected, _ = await connect(await sync_to_async(cookie_for)(user))
    assert connected
    assert await closed_with(comm) == 4503


async def test_cross_origin_socket_is_refused(cookie):
    comm, connected, _ = await connect(cookie, origin=(b"origin", b"http://evil.example"))
    assert not connected
    await comm.disconnect()


async def test_a_started_hub_has_frozen_what_start_up_loaded(cookie):
    """realtime/hub.py freeze_startup_objects: the collector no longer scans start-up's
    objects (a full collection stops every socket)."""
    import gc

    comm, _, _ = await connect(cookie)
    await subscribe(comm)
    assert hub_module._frozen and gc.get_freeze_count() > 0
    await comm.disconnect()


async def _deactivate(user):
    """A change no signal announces (QuerySet.update): only a check reading the database sees it."""
    from django.contrib.auth import get_user_model

    await database_sync_to_async(lambda: get_user_model().objects.filter(pk=user.pk).update(is_active=False))()


async def test_the_first_subscribe_right_after_connect_is_answered_on_the_connects_check(cookie, staff_user):
    """One access check per socket in a reconnect storm: the connect's check stands for a
    subscribe that follows within access_fresh_seconds() (the periodic re-check's interval)
    when nothing was pushed meanwhile; the next subscribe checks again."""
    await connect_started_hub(cookie)
    comm, _, _ = await connect(cookie)
    await _deactivate(staff_user)
    assert (await subscribe(comm))["type"] == "sync"  # on the connect's check
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 4501  # the second subscribe read the database


async def test_a_push_heard_between_connect_and_subscribe_makes_the_subscribe_check_again(cookie, staff_user):
    await connect_started_hub(cookie)
    comm, _, _ = await connect(cookie)
    await _deactivate(staff_user)
    await get_hub().guard.handle({"users": [12345]})  # any pushed access change, about anyone
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 4501


async def test_a_subscribe_later_than_the_fresh_window_checks_again(cookie, staff_user, monkeypatch):
    from realtime import consumers

    monkeypatch.setattr(consumers, "access_fresh_seconds", lambda: 0.05)
    await connect_started_hub(cookie)
    comm, _, _ = await connect(cookie)
    await _deactivate(staff_user)
    await asyncio.sleep(0.1)
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 4501


async def test_a_subscribe_that_arrived_in_the_fresh_window_keeps_it_however_late_its_turn(cookie, staff_user, monkeypatch):
    """In a storm a subscribe waits behind the others': its arrival counts, not its turn."""
    from realtime import consumers

    monkeypatch.setattr(consumers, "access_fresh_seconds", lambda: 0.05)
    drained = consumers.DashboardConsumer._drained

    async def late_turn(self):
        await asyncio.sleep(0.2)
        await drained(self)

    monkeypatch.setattr(consumers.DashboardConsumer, "_drained", late_turn)
    await connect_started_hub(cookie)
    comm, _, _ = await connect(cookie)
    await _deactivate(staff_user)
    assert (await subscribe(comm))["type"] == "sync"  # on the connect's check, 0.2 s later
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 4501  # the next one reads the database


async def test_a_socket_checked_before_its_hub_hears_pushes_is_checked_again(cookie, staff_user):
    assert not get_hub().started
    comm, _, _ = await connect(cookie)  # this socket starts the hub, after its check
    await _deactivate(staff_user)
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 4501


async def connect_started_hub(cookie):
    """A socket that makes the hub start, then leaves: a socket checked before its process's
    hub hears pushed changes is always checked again at its first subscribe."""
    first, _, _ = await connect(cookie)
    assert get_hub().started
    await first.disconnect()


# Subscribe and sync -------------------------------------------------------------------------


async def test_fresh_subscribe_gets_a_reset_with_the_whole_state(cookie):
    agent = await database_sync_to_async(Agent.objects.create)(name="a1")
    await database_sync_to_async(make_task)("first", agent=agent, status="running")
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    assert sync["reset"] is True
    assert [t["title"] for t in sync["tasks"]] == ["first"]
    assert sync["tasks"][0]["agent"] == agent.pk
    assert [a["name"] for a in sync["agents"]] == ["a1"]
    stream = await database_sync_to_async(Stream.objects.get)()
    assert (sync["epoch"], sync["seq"]) == (stream.epoch, stream.head)
    await comm.disconnect()


async def test_resume_gets_only_changed_rows_and_deletions(cookie):
    kept = await database_sync_to_async(make_task)("kept")
    changed = await database_sync_to_async(make_task)("changed")
    doomed = await database_sync_to_async(make_task)("doomed")
    doomed_id = doomed.pk
    comm, _, _ = await connect(cookie)
    first = await subscribe(comm)
    await comm.disconnect()

    def offline_changes():
        changed.progress = 40
        changed.save()
        doomed.delete()
        make_task("new")

    await database_sync_to_async(offline_changes)()
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm, first["seq"], first["epoch"])
    assert sync["reset"] is False
    assert sorted(t["title"] for t in sync["tasks"]) == ["changed", "new"]
    assert sync["deleted"]["tasks"] == [doomed_id]
    assert kept.pk not in [t["id"] for t in sync["tasks"]]
    assert sync["seq"] == first["seq"] + 3
    await comm.disconnect()


async def test_many_missed_changes_to_few_rows_give_a_small_delta(cookie):
    def fifty_rows():
        Task.objects.bulk_create([Task(title=f"row {i}") for i in range(50)])

    await database_sync_to_async(fifty_rows)()
    comm, _, _ = await connect(cookie)
    first = await subscribe(comm)
    await comm.disconnect()

    def many_changes():
        for round_ in range(200):  # 200 rounds x 50 rows = 10,000 changes
            Task.objects.update(progress=round_ % 100)

    await database_sync_to_async(many_changes)()
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm, first["seq"], first["epoch"])
    assert sync["seq"] - first["seq"] == 10_000
    assert sync["reset"] is False and len(sync["tasks"]) == 50
    await comm.disconnect()


async def test_a_large_sync_goes_out_in_parts_that_add_up_to_the_state(cookie, settings):
    settings.REALTIME_MAX_SEND_BYTES = 4000
    await database_sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"row {i:03}") for i in range(120)]))()
    comm, _, _ = await connect(cookie)
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    first = await receive(comm, "sync")
    parts = [first] + [await receive(comm, "sync") for _ in range(first["parts"] - 1)]
    assert first["parts"] > 1 and [p["part"] for p in parts] == list(range(1, first["parts"] + 1))
    assert all(p["reset"] is True for p in parts), "every part carries the same reset flag"
    assert {p["seq"] for p in parts} == {first["seq"]} and {p["epoch"] for p in parts} == {first["epoch"]}
    assert all(len(json.dumps(p, separators=(",", ":"))) <= 4000 for p in parts)
    titles = sorted(t["title"] for p in parts for t in p["tasks"])
    assert titles == [f"row {i:03}" for i in range(120)]
    await comm.disconnect()


async def test_unknown_epoch_gets_a_reset(cookie):
    await database_sync_to_async(make_task)("x")
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm, 1, "some-other-epoch")
    assert sync["reset"] is True and [t["title"] for t in sync["tasks"]] == ["x"]
    await comm.disconnect()


async def test_since_older_than_the_tombstone_horizon_gets_a_reset(cookie, settings):
    comm, _, _ = await connect(cookie)
    first = await subscribe(comm)
    await comm.disconnect()

    def delete_and_prune():
        make_task("gone").delete()
        make_task("alive")
        Tombstone.objects.update(deleted_at="2000-01-01T00:00:00Z")
        from realtime.snapshot import prune_tombstones

        return prune_tombstones()

    assert await database_sync_to_async(delete_and_prune)() == 1
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm, first["seq"], first["epoch"])
    assert sync["reset"] is True and [t["title"] for t in sync["tasks"]] == ["alive"]
    await comm.disconnect()


async def test_since_ahead_of_the_head_gets_a_reset(cookie):
    comm, _, _ = await connect(cookie)
    first = await subscribe(comm)
    sync = await subscribe(comm, first["seq"] + 10, first["epoch"])
    assert sync["reset"] is True
    await comm.disconnect()


# Live events ---------------------------------------------------------------------------------


async def test_committed_changes_arrive_in_order_with_version_equal_to_seq(cookie):
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)

    def writes():
        task = make_task("live")
        task.status = "running"
        task.save()
        task.delete()

    await database_sync_to_async(writes)()
    events = await next_events(comm, 3)
    assert [e["seq"] for e in events] == [sync["seq"] + 1, sync["seq"] + 2, sync["seq"] + 3]
    assert [e["op"] for e in events] == ["upsert", "upsert", "delete"]
    assert events[0]["data"]["version"] == events[0]["seq"]
    assert events[1]["data"]["status"] == "running" and events[1]["data"]["started_at"]
    assert events[2]["data"] == {"id": events[0]["data"]["id"]}
    await comm.disconnect()


async def test_a_bulk_update_arrives_as_one_batch_frame(cookie):
    await database_sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"b{i}") for i in range(5)]))()
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    await database_sync_to_async(lambda: Task.objects.update(progress=7))()
    frame = await receive(comm, "events")
    assert [e["seq"] for e in frame["items"]] == list(range(sync["seq"] + 1, sync["seq"] + 6))
    assert all(e["data"]["progress"] == 7 for e in frame["items"])
    await comm.disconnect()


async def test_rolled_back_changes_are_never_sent(cookie):
    from django.db import transaction

    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)

    def rolled_back_then_committed():
        try:
            with transaction.atomic():
                make_task("never")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        make_task("committed")

    await database_sync_to_async(rolled_back_then_committed)()
    [event] = await next_events(comm, 1)
    assert event["seq"] == sync["seq"] + 1 and event["data"]["title"] == "committed"
    await comm.disconnect()


async def test_a_dropped_layer_message_is_healed_through_the_head(cookie, monkeypatch, settings):
    """A change whose publish is lost reaches nobody through the layer; the hub finds the
    database ahead and pings at once with the head, so the client resubscribes."""
    settings.REALTIME_REORDER_WINDOW = 0.05
    monkeypatch.setattr(hub_module, "HEAD_POLL_SECONDS", 0.1)
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    from realtime import publish

    monkeypatch.setattr(publish, "send_now", lambda epoch, events: None)  # the layer drops it
    await database_sync_to_async(make_task)("lost in transit")
    ping = await receive(comm, "ping", timeout=5)
    assert ping["seq"] == sync["seq"] + 1
    delta = await subscribe(comm, sync["seq"], sync["epoch"])
    assert [t["title"] for t in delta["tasks"]] == ["lost in transit"]
    await comm.disconnect()


def deleted_at(seq):
    """The layer's event of a task deleted at `seq` (the hub's input)."""
    return {"type": "event", "seq": seq, "entity": "task", "op": "delete", "data": {"id": seq}}


async def subscribed(cookie):
    """A subscribed socket, the number its sync is at, and this process's hub."""
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    return comm, sync["seq"], get_hub()


async def test_a_burst_goes_out_as_one_frame(cookie):
    comm, head, hub = await subscribed(cookie)
    for seq in range(head + 1, head + 51):  # fifty separate layer messages, back to back
        await hub.put_in_order(hub.epoch, [deleted_at(seq)])
    frame = await receive(comm, "events")
    assert [e["seq"] for e in frame["items"]] == list(range(head + 1, head + 51))
    await comm.disconnect()


async def test_a_head_always_a_little_ahead_under_steady_writes_is_not_a_gap(cookie, settings):
    settings.REALTIME_REORDER_WINDOW = 0
    comm, seq, hub = await subscribed(cookie)
    for _ in range(5):  # each poll sees two commits still in flight, which then arrive
        await hub.check_head(hub.epoch, seq + 2)
        await hub.put_in_order(hub.epoch, [deleted_at(seq + 1), deleted_at(seq + 2)])
        seq += 2
    assert hub.last == seq and await next_events(comm, 10)
    await hub.check_head(hub.epoch, seq + 1)  # this one never arrives
    await hub.check_head(hub.epoch, seq + 1)
    assert (await receive(comm, "ping"))["seq"] == seq + 1
    await comm.disconnect()


async def test_an_event_that_arrives_early_waits_for_its_predecessor(cookie):
    comm, head, hub = await subscribed(cookie)
    await hub.put_in_order(hub.epoch, [deleted_at(head + 2)])
    await hub.put_in_order(hub.epoch, [deleted_at(head + 1)])
    frame = await receive(comm, "events")
    assert [e["seq"] for e in frame["items"]] == [head + 1, head + 2]
    await comm.disconnect()


async def test_changes_committed_while_the_sync_is_built_are_not_lost(cookie, monkeypatch):
    """Writes land between the hub's fan-out and the sync read; the client still ends equal."""
    from realtime import consumers, snapshot

    original = snapshot.build_sync

    def slow_build(since, epoch):
        result = original(since, epoch)
        make_task("during sync")  # commits after the snapshot was read, before it is sent
        return result

    monkeypatch.setattr(consumers, "build_sync", slow_build)
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    [event] = await next_events(comm, 1)
    assert event["seq"] == sync["seq"] + 1 and event["data"]["title"] == "during sync"
    await comm.disconnect()


# Heartbeat ----------------------------------------------------------------------------------


async def test_server_pings_with_the_head_and_a_late_pong_closes_4008(cookie, settings):
    settings.REALTIME_HEARTBEAT_INTERVAL = 0.3
    settings.REALTIME_HEARTBEAT_TIMEOUT = 0.3
    comm, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ping = await receive(comm, "ping")
    assert ping["seq"] == sync["seq"] and ping["epoch"] == sync["epoch"]
    await comm.send_json_to({"type": "pong", "id": ping["id"]})
    second = await receive(comm, "ping")
    assert second["id"] != ping["id"]
    assert await closed_with(comm) == 4008  # the second ping is never answered
    assert loop.time() - started < 0.3 * 2 + 0.3 + 1.0
    assert get_hub().members == set()


async def test_a_socket_that_speaks_is_not_pinged_and_one_that_falls_silent_is(cookie, settings):
    """Idle sockets cost what the heartbeat does for them: a socket that sent something within
    the interval has shown it is alive (the browser pings to measure its round trip)."""
    settings.REALTIME_HEARTBEAT_INTERVAL = 0.5
    settings.REALTIME_HEARTBEAT_TIMEOUT = 0.5
    comm, _, _ = await connect(cookie)
    await subscribe(comm)
    loop = asyncio.get_running_loop()
    until = loop.time() + 2.0
    while loop.time() < until:  # speaking every 0.2 s, for four intervals
        await comm.send_json_to({"type": "ping", "id": "rtt"})
        frame = await receive(comm, timeout=1)
        assert frame == {"type": "pong", "id": "rtt"}, f"pinged although it spoke: {frame}"
        await asyncio.sleep(0.2)
    silent_at = loop.time()
    ping = await receive(comm, "ping", timeout=2)  # silent: asked within an interval
    assert loop.time() - silent_at < 0.5 + 0.5
    assert await closed_with(comm) == 4008 and ping["id"]


async def test_client_ping_is_answered_at_once(cookie):
    comm, _, _ = await connect(cookie)
    await comm.send_json_to({"type": "ping", "id": "rtt-1"})
    assert await receive(comm) == {"type": "pong", "id": "rtt-1"}
    await comm.disconnect()


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", "bad_json"),
        ("[1, 2]", "not_object"),
        ('"subscribe"', "not_object"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "subscribe", "since": "ten", "epoch": null}', "bad_field"),
        ('{"type": "subscribe", "since": -1, "epoch": null}', "bad_field"),
        ('{"type": "subscribe", "since": true, "epoch": null}', "bad_field"),
        ('{"type": "subscribe", "since": 1, "epoch": 5}', "bad_field"),
        ('{"type": "pong", "id": "x"}', "bad_field"),
        ('{"type": "ping", "id": [1]}', "bad_field"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(cookie, frame, code):
    comm, _, _ = await connect(cookie)
    await comm.send_to(text_data=frame)
    error = await receive(comm, "error")
    assert error["code"] == code and error["message"]
    sync = await subscribe(comm)  # still serving
    assert sync["type"] == "sync"
    await comm.disconnect()


async def test_binary_frames_get_an_error_frame(cookie):
    comm, _, _ = await connect(cookie)
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await receive(comm, "error"))["code"] == "binary_frame"
    await comm.disconnect()


async def test_a_frame_over_the_size_limit_closes_1009(cookie, settings):
    settings.REALTIME_MAX_FRAME_BYTES = 1000
    comm, _, _ = await connect(cookie)
    await comm.send_to(text_data=json.dumps({"type": "ping", "id": "x" * 2000}))
    assert await closed_with(comm) == 1009


async def test_a_flood_of_messages_closes_4029(cookie, settings):
    settings.REALTIME_RATE_LIMIT = 5
    settings.REALTIME_RATE_BURST = 10
    comm, _, _ = await connect(cookie)
    for i in range(30):
        await comm.send_json_to({"type": "ping", "id": i})
    assert await closed_with(comm) == 4029


async def test_a_client_that_keeps_sending_garbage_is_closed_4509(cookie):
    comm, _, _ = await connect(cookie)
    for _ in range(10):
        await comm.send_to(text_data="garbage")
    assert await closed_with(comm) == 4509


async def test_one_bad_client_does_not_disturb_another(cookie):
    good, _, _ = await connect(cookie)
    bad, _, _ = await connect(cookie)
    sync = await subscribe(good)
    for _ in range(10):
        await bad.send_to(text_data="garbage")
    assert await closed_with(bad) == 4509
    await database_sync_to_async(make_task)("still flowing")
    event = await receive(good, "event")
    assert event["seq"] == sync["seq"] + 1
    await good.disconnect()


# Cleanup on every way out ----------------------------------------------------------------------


async def test_normal_close_leaves_nothing_behind(cookie):
    comm, _, hub = await subscribed(cookie)
    assert len(hub.members) == 1
    await comm.disconnect()
    assert hub.members == set()


async def test_an_exception_in_a_handler_leaves_nothing_behind(cookie, monkeypatch):
    comm, _, _ = await connect(cookie)
    hub = get_hub()
    assert len(hub.members) == 1

    def broken(consumer, ping_id):
        raise RuntimeError("handler exploded")

    monkeypatch.setattr(hub.heartbeat, "pong", broken)
    await comm.send_json_to({"type": "pong", "id": 1})
    with pytest.raises(RuntimeError, match="handler exploded"):
        await comm.wait(3)
    assert hub.members == set()


async def test_a_sync_that_fails_with_a_bug_closes_1011_and_leaves_nothing_behind(cookie, monkeypatch):
    from realtime import consumers

    def broken(since, epoch):
        raise RuntimeError("sync exploded")

    monkeypatch.setattr(consumers, "build_sync", broken)
    comm, _, _ = await connect(cookie)
    hub = get_hub()
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    assert await closed_with(comm) == 1011
    assert hub.members == set()


async def test_server_shutdown_cancelling_the_consumer_leaves_nothing_behind(cookie):
    comm, _, hub = await subscribed(cookie)
    assert len(hub.members) == 1
    comm.future.cancel()  # what daphne does to every application on SIGTERM
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    assert hub.members == set()


async def test_hub_is_the_only_group_member_and_sockets_have_no_layer_channel(cookie):
    comms = [(await connect(cookie))[0] for _ in range(3)]
    layer = channel_layers["default"]
    hub = get_hub()
    assert list(layer.groups["dashboard.stream"]) == [hub.channel]
    assert len(hub.members) == 3
    assert all(getattr(member, "channel_name", None) is None for member in hub.members)
    for comm in comms:
        await comm.disconnect()
    assert hub.members == set()


async def test_hub_shutdown_closes_every_socket_with_1012(cookie):
    comms = [(await connect(cookie))[0] for _ in range(3)]
    for comm in comms:
        await subscribe(comm)
    hub = get_hub()
    await hub.shutdown()
    for comm in comms:
        assert await closed_with(comm) == 1012
    assert hub.members == set()


# The strongest test: sync at any moment plus the events after it equals a fresh fetch -----------


async def test_sync_plus_events_equals_a_fresh_fetch_end_to_end(cookie):
    client = StreamState()
    comm, _, _ = await connect(cookie)

    def writes():
        agent = Agent.objects.create(name="w")
        tasks = Task.objects.bulk_create([Task(title=f"w{i}") for i in range(10)])
        for task in tasks[:5]:
            task.status, task.agent = "running", agent
            task.save()
        tasks[9].delete()
        agent.delete()
        Task.objects.filter(status="queued").update(status="cancelled")

    writer = asyncio.ensure_future(sync_to_async(writes, thread_sensitive=False)())
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    await asyncio.wait_for(writer, 60)
    expected = await database_sync_to_async(database_rows)()
    end = time.monotonic() + WITHIN
    while client.syncs == 0 or (client.tasks, client.agents) != expected:
        assert time.monotonic() < end, f"the client did not equal the database within {WITHIN} s"
        frame = await comm.receive_json_from(5)
        if frame["type"] == "sync":
            client.apply_sync(frame)
        else:
            assert all(client.apply_event(e) for e in frame.get("items", [frame])), "gap"
    assert client.syncs == 1 and client.gaps == 0
    await comm.disconnect()


# Admission: sockets per user, subscribe floods, concurrent syncs -------------------------------


async def test_sockets_beyond_the_per_user_limit_are_closed_with_4030_and_a_reason(cookie, settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 2
    first, _, _ = await connect(cookie)
    second, _, _ = await connect(cookie)
    third, connected, _ = await connect(cookie)
    closing = await receive(third, "error")
    assert closing["code"] == "closing" and closing["close"] == 4030 and "2 dashboards open" in closing["message"]
    assert await closed_with(third) == 4030
    await first.disconnect()
    fourth, _, _ = await connect(cookie)  # a freed slot can be used again
    assert (await subscribe(fourth))["type"] == "sync"
    for comm in (second, fourth):
        await comm.disconnect()


async def test_a_flood_of_subscribes_builds_few_syncs(cookie, settings, monkeypatch):
    from realtime import consumers

    settings.REALTIME_MIN_SUBSCRIBE_INTERVAL = 0.5
    settings.REALTIME_RATE_BURST = 1000
    settings.REALTIME_RATE_LIMIT = 1000
    built = []
    original = consumers.build_sync
    monkeypatch.setattr(consumers, "build_sync", lambda since, epoch: built.append(since) or original(since, epoch))
    comm, _, _ = await connect(cookie)
    started = asyncio.get_running_loop().time()
    for _ in range(200):
        await comm.send_json_to({"type": "subscribe", "since": 0, "epoch": None})
    await asyncio.sleep(1.6)
    syncs, end = 0, time.monotonic() + WITHIN
    while not await comm.receive_nothing(0.1):  # (a receive timeout would cancel the consumer)
        assert time.monotonic() < end, f"frames still coming after {WITHIN} s ({syncs} syncs)"
        syncs += (await comm.receive_json_from())["type"] == "sync"
    elapsed = asyncio.get_running_loop().time() - started
    assert 1 <= len(built) <= 2 + elapsed / 0.5 and syncs == len(built), (len(built), syncs, elapsed)
    await comm.disconnect()


async def test_syncs_built_at_once_are_bounded_per_process(cookie, settings, monkeypatch):
    import threading

    from realtime import consumers

    settings.REALTIME_MAX_CONCURRENT_SYNCS = 2
    lock, running, peak = threading.Lock(), [0], [0]
    original = consumers.build_sync

    def slow(since, epoch):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return original(since, epoch)

    monkeypatch.setattr(consumers, "build_sync", slow)
    comms = [(await connect(cookie))[0] for _ in range(6)]
    for since, comm in enumerate(comms):  # six positions: each needs a read of its own
        await comm.send_json_to({"type": "subscribe", "since": since, "epoch": None})
    for comm in comms:
        assert (await receive(comm, "sync", timeout=10))["reset"] is True
    assert peak[0] == 2
    for comm in comms:
        await comm.disconnect()


async def test_pongs_are_answered_while_a_sync_is_being_built(cookie, settings, monkeypatch):
    """A sync that takes longer than the pong timeout does not close its own socket."""
    import threading

    from realtime import consumers

    settings.REALTIME_HEARTBEAT_INTERVAL = 0.4
    settings.REALTIME_HEARTBEAT_TIMEOUT = 0.4
    release = threading.Event()
    original = consumers.build_sync
    monkeypatch.setattr(consumers, "build_sync", lambda since, epoch: release.wait(10) and original(since, epoch))
    comm, _, _ = await connect(cookie)
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    pongs = 0
    deadline = asyncio.get_running_loop().time() + 2.5
    while asyncio.get_running_loop().time() < deadline:
        frame = await comm.receive_json_from(2)
        assert frame["type"] == "ping", frame
        await comm.send_json_to({"type": "pong", "id": frame["id"]})
        pongs += 1
    release.set()
    assert pongs >= 3
    assert (await receive(comm, "sync", timeout=5))["reset"] is True
    await comm.disconnect()


# The database not answering ---------------------------------------------------------------------


async def test_a_socket_that_connects_while_the_database_is_down_is_told_to_come_back(cookie, monkeypatch):
    from django.db import OperationalError

    from realtime import consumers

    def down(key):
        raise OperationalError("connection refused")

    monkeypatch.setattr(consumers, "check_session", down)
    comm, _, _ = await connect(cookie)
    closing = await receive(comm, "error")
    assert closing["close"] == 4013 and "database" in closing["message"]
    assert await closed_with(comm) == 4013


async def test_a_sync_the_database_cannot_answer_is_retried_on_the_open_socket(cookie, monkeypatch):
    from django.db import OperationalError

    from realtime import consumers

    failures = [3]
    original = consumers.build_sync

    def flaky(since, epoch):
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return original(since, epoch)

    monkeypatch.setattr(consumers, "build_sync", flaky)
    comm, _, _ = await connect(cookie)
    await comm.send_json_to({"type": "subscribe", "since": None, "epoch": None})
    told = await receive(comm, "error")
    assert told["code"] == "unavailable"
    assert (await receive(comm, "sync", timeout=10))["reset"] is True
    await comm.disconnect()


# History moving backwards -------------------------------------------------------------------------


async def test_a_client_ahead_of_the_database_gets_a_reset_and_changes_nothing_for_others(cookie):
    await database_sync_to_async(make_task)("x")
    comm, _, _ = await connect(cookie)
    bystander, _, _ = await connect(cookie)
    sync = await subscribe(comm)
    await subscribe(bystander)
    # A client claims a number beyond the head (a lie, or a database that lost commits): it
    # gets a reset, and the epoch every other client holds stays as it was.
    ahead = await subscribe(comm, sync["seq"] + 5, sync["epoch"])
    assert ahead["reset"] is True and ahead["epoch"] == sync["epoch"]
    stream = await database_sync_to_async(Stream.objects.get)()
    assert stream.epoch == sync["epoch"]
    assert await bystander.receive_nothing(1.5)
    await comm.disconnect()
    await bystander.disconnect()


async def test_whole_stream_syncs_at_one_position_share_one_read_until_the_stream_moves(cookie, monkeypatch):
    """As for views (tests/test_stream_views.py): a v1 sync built for one socket answers each
    socket that claims the same position within SHARED_SYNC_SECONDS, with no read of its own,
    until the next change."""
    from django.db.backends import utils

    from realtime import metrics

    reads, execute = [], utils.CursorWrapper.execute

    def counted(self, sql, params=None):
        if "tasks_task" in sql or "realtime_stream" in sql:
            reads.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(utils.CursorWrapper, "execute", counted)
    await database_sync_to_async(make_task)("first")
    await connect_started_hub(cookie)
    first, _, _ = await connect(cookie)
    fresh = await subscribe(first)
    shared_before = metrics.SHARED_SYNCS._value.get()
    second, _, _ = await connect(cookie)
    reads.clear()
    assert await subscribe(second) == fresh
    assert reads == [] and metrics.SHARED_SYNCS._value.get() == shared_before + 1

    task = await database_sync_to_async(make_task)("second")
    for comm in (first, second):
        assert (await receive(comm, "event"))["seq"] == task.version
    third, _, _ = await connect(cookie)
    reads.clear()
    moved = await subscribe(third)
    assert reads, "a change ends the shared answer"
    assert moved["seq"] == task.version and task.pk in {t["id"] for t in moved["tasks"]}
    for comm in (first, second, third):
        await comm.disconnect()

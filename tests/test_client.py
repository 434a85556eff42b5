"""realtime/client.py: the client rules of docs/protocol.md, frame by frame, without a socket."""
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.client import StreamState

ROOT = Path(__file__).resolve().parent.parent
VIEW = {"status": ["queued", "running"], "limit": 2, "current": True}


def task(i, version, status="queued"):
    return {"id": i, "title": f"t{i}", "status": status, "version": version}


def agent(i, version):
    return {"id": i, "name": f"a{i}", "version": version}


def sync(seq, tasks=(), agents=(), reset=True, deleted=None, **extra):
    return {"type": "sync", "epoch": "e1", "seq": seq, "reset": reset, "tasks": list(tasks), "agents": list(agents),
            "deleted": deleted or {"tasks": [], "agents": []}, **extra}


def event(seq, entity="task", op="upsert", data=None, **extra):
    return {"type": "event", "seq": seq, "entity": entity, "op": op,
            "data": data if data is not None else task(1, seq), **extra}


def versions(table):
    return {i: row["version"] for i, row in table.items()}


def synced(*frames, view=None):
    state = StreamState(view)
    state.subscribe_frame()
    for frame in frames:
        assert not state.apply(frame)
    return state


def test_the_module_runs_without_django():
    """The load client imports it where no Django is configured."""
    code = "import sys, realtime.client; print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'tasks')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_subscribe_frame_carries_the_position_and_the_view():
    state = StreamState()
    assert state.subscribe_frame() == {"type": "subscribe", "since": None, "epoch": None, "fp": None}
    assert state.subscribing
    state.apply(sync(7, [task(1, 5)], fp="f7"))
    assert not state.subscribing
    state.view = VIEW
    assert state.subscribe_frame() == {"type": "subscribe", "since": 7, "epoch": "e1", "fp": "f7", "view": VIEW}


def test_events_apply_in_order_and_duplicates_are_ignored():
    state = synced(sync(2, [task(1, 1)], [agent(1, 2)]))
    assert not state.apply(event(3, data=task(1, 3), fp="f3"))
    assert not state.apply(event(3, data=task(1, 3)))  # again: a duplicate
    assert not state.apply(event(4, "agent", data=agent(2, 4)))
    assert not state.apply(event(5, "agent", "delete", {"id": 1}))
    assert (versions(state.tasks), versions(state.agents)) == ({1: 3}, {2: 4})
    assert (state.last, state.fp, state.events, state.duplicates, state.gaps) == (5, None, 3, 1, 0)


def test_a_gap_says_subscribe_again_and_the_sync_in_flight_covers_what_comes_before_it():
    state = synced(sync(2, [task(1, 1)]))
    assert state.apply(event(4))
    assert (state.last, state.gaps) == (2, 1)
    state.subscribe_frame()
    assert not state.apply(event(5))  # the sync asked for covers it
    assert state.last == 2
    assert not state.apply(sync(5, [task(1, 5)], reset=False))
    assert (state.last, versions(state.tasks), state.resets) == (5, {1: 5}, 1)


def test_a_batch_stops_at_its_first_gap():
    state = synced(sync(2))
    frame = {"type": "events", "items": [event(3, data=task(1, 3)), event(5, data=task(2, 5)), event(6, data=task(3, 6))]}
    assert state.apply(frame)
    assert (state.last, versions(state.tasks)) == (3, {1: 3})


def test_a_row_never_goes_back_to_an_older_version():
    state = synced(sync(10, [task(1, 9)], [agent(1, 10)]))
    assert not state.apply(sync(12, [task(1, 4)], [agent(1, 3)], reset=False))
    assert (versions(state.tasks), versions(state.agents)) == ({1: 9}, {1: 10})


def test_a_delta_sync_removes_what_was_deleted_and_a_reset_replaces_everything():
    state = synced(sync(3, [task(1, 1), task(2, 2)], [agent(1, 3)]))
    state.apply(sync(5, [task(3, 4)], deleted={"tasks": [1], "agents": [1]}, reset=False))
    assert (versions(state.tasks), state.agents) == ({2: 2, 3: 4}, {})
    state.apply(sync(6, [task(9, 6)]))
    assert versions(state.tasks) == {9: 6}


def test_other_entities_advance_the_position_and_are_not_kept():
    state = synced(sync(1))
    assert not state.apply(event(2, "note", data={"id": 1, "text": "hi"}))
    assert (state.last, state.tasks, state.agents) == (2, {}, {})


def test_a_ping_ahead_or_from_another_epoch_says_subscribe_again():
    state = StreamState()
    assert not state.apply({"type": "ping", "id": 1, "seq": 9, "epoch": "e1"})  # nothing to compare yet
    state = synced(sync(4))
    assert not state.apply({"type": "ping", "id": 2, "seq": 4, "epoch": "e1"})
    assert state.apply({"type": "ping", "id": 3, "seq": 5, "epoch": "e1"})
    assert state.apply({"type": "ping", "id": 4, "seq": 4, "epoch": "e2"})
    state.subscribe_frame()
    assert not state.apply({"type": "ping", "id": 5, "seq": 5, "epoch": "e1"})  # already subscribing


def test_a_sync_in_parts_is_applied_whole_with_its_last_part():
    state = synced(sync(2, [task(1, 1)], [agent(1, 2)]))
    state.subscribe_frame()
    first = sync(9, [task(5, 8)], reset=True, part=1, parts=2, deleted={"tasks": [], "agents": []})
    second = sync(9, [task(6, 9)], [agent(2, 7)], reset=True, part=2, parts=2, deleted={"tasks": [], "agents": []})
    assert not state.apply(first)
    assert (state.last, versions(state.tasks), state.syncs) == (2, {1: 1}, 1)  # nothing moves before the last part
    assert not state.apply(second)
    assert (state.last, versions(state.tasks), versions(state.agents)) == (9, {5: 8, 6: 9}, {2: 7})
    assert (state.syncs, state.parts_received, state.bad_parts) == (2, 2, 0)


def test_a_part_out_of_turn_or_cut_off_with_the_connection_is_dropped():
    state = synced(sync(2))
    parts = [sync(9, [task(k, 8)], part=k, parts=3) for k in (1, 2, 3)]
    state.apply(parts[0])
    state.apply(parts[2])  # part 2 never came
    assert (state.last, state.bad_parts, state.staged) == (2, 1, None)
    state.apply(parts[0])
    state.connection_lost()
    state.apply(parts[1])
    assert (state.last, state.bad_parts, state.subscribing) == (2, 2, False)


def test_a_views_sync_replaces_the_window_whatever_reset_says():
    counts = {"queued": 3, "running": 1, "matched": 4}
    state = synced(sync(5, [task(1, 1)], [agent(1, 2)]), view=VIEW)
    state.apply(sync(8, [task(7, 8), task(6, 6, "running")], reset=False, view=VIEW, counts=counts, fp="f8",
                     current=[task(6, 6, "running")]))
    assert (versions(state.tasks), versions(state.agents), versions(state.current)) == ({7: 8, 6: 6}, {1: 2}, {6: 6})
    assert (state.echo, state.counts, state.fp) == (VIEW, counts, "f8")
    state.apply(sync(9, [task(7, 8)], reset=False, view={"limit": 1}, counts=counts))
    assert state.current == {}  # a view without `current`
    state.apply(sync(10, [task(1, 1)]))  # the whole stream again: no window, no counts
    assert (state.echo, state.counts, state.current) == (None, None, {})


def test_ranges_apply_from_the_next_number_only():
    counts = {"queued": 2, "matched": 2}
    state = synced(sync(5, [task(1, 1), task(2, 2)], [agent(1, 3)], view=VIEW, counts=counts, current=[]), view=VIEW)
    changed = {"queued": 3, "matched": 3}
    in_range = {"type": "events", "from": 6, "to": 8, "fp": "f8", "counts": changed, "items": [
        {"type": "event", "seq": 6, "entity": "agent", "op": "upsert", "data": agent(1, 6)},
        {"type": "event", "seq": 8, "entity": "task", "op": "upsert", "data": task(3, 8)},
        {"type": "event", "entity": "task", "op": "delete", "data": {"id": 1}, "left": True},
        {"type": "event", "seq": 7, "entity": "current", "op": "upsert", "data": task(2, 7, "running")},
        {"type": "event", "seq": 7, "entity": "agent", "op": "upsert", "data": agent(1, 2)},  # older: kept out
    ]}
    assert not state.apply(in_range)
    assert (versions(state.tasks), versions(state.agents), versions(state.current)) == ({2: 2, 3: 8}, {1: 6}, {2: 7})
    assert (state.last, state.fp, state.counts, state.ranges) == (8, "f8", changed, 1)
    assert not state.apply(dict(in_range, items=[]))  # to <= last: a duplicate
    assert (state.duplicates, state.ranges) == (1, 1)
    assert not state.apply({"type": "events", "from": 9, "to": 9, "items": []})  # an empty range moves the position
    assert (state.last, state.fp, state.counts) == (9, None, changed)
    assert state.apply({"type": "events", "from": 11, "to": 12, "items": []})
    assert (state.last, state.gaps) == (9, 1)


@pytest.mark.parametrize("frame", [{"type": "pong", "id": 1}, {"type": "error", "code": "bad_view", "message": "x"}])
def test_other_frames_change_nothing(frame):
    state = synced(sync(3, [task(1, 3)]))
    assert not state.apply(frame)
    assert (state.last, versions(state.tasks), state.subscribing) == (3, {1: 3}, False)

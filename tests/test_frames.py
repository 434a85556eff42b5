"""No frame the server sends is larger than REALTIME_MAX_SEND_BYTES (realtime/frames.py): a
burst of events is cut into `events` batches, a sync into parts, and nothing is lost, doubled
or reordered by the cutting. In process, with a small limit; tests/test_edges.py sends the
same through daphne and Redis."""
import json

import pytest

from realtime import frames

LIMIT = 2000


class WireEvent(dict):
    """An event as event_frames reads it: the wire object, and its encoding (`text`)."""

    @property
    def text(self):
        return frames.dumps(self)


def event(seq, title):
    return WireEvent(type="event", seq=seq, entity="task", op="upsert",
                     data={"id": seq % 7 + 1, "title": title, "status": "running", "progress": seq % 100, "version": seq})


def decoded(text):
    """The events one frame carries."""
    frame = json.loads(text)
    if frame["type"] == "events":
        return frame["items"]
    assert frame["type"] == "event", frame
    return [frame]


@pytest.fixture
def small_frames(settings):
    settings.REALTIME_MAX_SEND_BYTES = LIMIT


def test_a_burst_of_events_is_cut_into_batches_that_fit_the_limit(small_frames):
    events = [event(seq, "x" * (seq * 37 % 300)) for seq in range(101, 401)]
    cut = frames.event_frames(events)
    assert len(cut) > 1, "300 events of about 200 bytes went out in one frame"
    assert max(len(text.encode()) for text, _ in cut) <= LIMIT, [len(text) for text, _ in cut]
    assert [e["seq"] for text, _ in cut for e in decoded(text)] == list(range(101, 401)), "lost, doubled or reordered"
    for text, part in cut:  # each frame says which events it carries
        assert [e["seq"] for e in decoded(text)] == [e["seq"] for e in part]
    assert json.loads(cut[0][0]) == {"type": "events", "items": [dict(e) for e in cut[0][1]]}


def test_events_that_fit_travel_together_and_a_lone_event_alone(small_frames):
    few = [event(seq, "short") for seq in (5, 6, 7)]
    [(text, part)] = frames.event_frames(few)
    assert json.loads(text) == {"type": "events", "items": [dict(e) for e in few]} and list(part) == few
    [(text, part)] = frames.event_frames(few[:1])
    assert json.loads(text) == dict(few[0])


def test_an_event_larger_than_the_limit_travels_alone_between_batches(small_frames):
    events = [event(1, "a"), event(2, "b" * (LIMIT * 2)), event(3, "c"), event(4, "d")]
    cut = frames.event_frames(events)
    assert [[e["seq"] for e in decoded(text)] for text, _ in cut] == [[1], [2], [3, 4]]


def test_a_sync_is_cut_into_parts_that_fit_the_limit_and_add_up_to_it(small_frames):
    tasks = [frames.dumps({"id": i, "title": "t" * (i * 13 % 200), "version": i}) for i in range(1, 201)]
    agents = [frames.dumps({"id": i, "name": f"agent-{i}", "version": 500 + i}) for i in range(1, 31)]
    deleted = {"tasks": list(range(1000, 1300)), "agents": [7000, 7001]}
    texts = frames.sync_frames(epoch="e1", seq=900, reset=False, rows={"tasks": tasks, "agents": agents},
                               deleted=deleted, extras={"counts": {"running": 3}})
    parts = [json.loads(text) for text in texts]
    assert len(parts) > 1 and max(len(text.encode()) for text in texts) <= LIMIT, [len(t) for t in texts]
    assert [(p["part"], p["parts"]) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    assert all((p["type"], p["epoch"], p["seq"], p["reset"], p["counts"]) == ("sync", "e1", 900, False, {"running": 3})
               for p in parts)
    assert [row for p in parts for row in p["tasks"]] == [json.loads(t) for t in tasks]
    assert [row for p in parts for row in p["agents"]] == [json.loads(a) for a in agents]
    for key, ids in deleted.items():
        assert [i for p in parts for i in p["deleted"][key]] == ids


def test_a_sync_that_fits_is_one_frame_without_part_numbers(small_frames):
    [text] = frames.sync_frames(epoch="e1", seq=3, reset=True, rows={"tasks": [frames.dumps({"id": 1})]},
                                deleted={"tasks": []}, extras={})
    frame = json.loads(text)
    assert "part" not in frame and frame["tasks"] == [{"id": 1}] and frame["deleted"] == {"tasks": []}

"""The event vocabulary, typed in one place: what sequencing publishes, what the layer carries,
and every frame the server sends (docs/protocol.md). tests/test_events.py checks every frame
the server sends against these shapes.

One numbered change is an `Event`: made by sequencing (realtime/sequencing.py) inside the
writer's transaction, carried between processes as a plain dict (`wire()`, plus the values
it had before, `before`), and encoded to JSON once (`text`) however many sockets and views
receive it.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, NotRequired, TypedDict

from .protocol import DELETE, EVENT, EVENTS, LAYER_ACCESS, LAYER_CHANGES, PING, SYNC, UPSERT

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = datetime.resolution


def fingerprint(seq, at):
    """A short mark of the change numbered `seq`, written at `at` (its history row's time).

    A client keeps the mark of the last change it applied and sends it back when it resumes;
    the server compares it with the history it holds at that number. A database restored from
    a backup reissues numbers for other changes, at other times: the marks differ, and the
    client gets a reset instead of a delta on top of a history that no longer exists."""
    micros = (at - _EPOCH) // _MICROSECOND
    return hashlib.blake2b(f"{seq}:{micros}".encode(), digest_size=5).hexdigest()


@dataclass(slots=True, eq=False)
class Event:
    """One numbered change of a streamed row."""

    seq: int
    entity: str
    op: str  # UPSERT or DELETE
    data: dict  # the whole row as the wire shows it (upsert), or {"id": ...} (delete)
    # The values of the entity's watched fields before the change (registry `Entity.watched`),
    # None when the row did not exist. Views and counts need them; they never go to clients.
    before: tuple | None = None
    fp: str | None = None  # fingerprint(seq, at) when the change is kept in the history
    _text: str | None = field(default=None, repr=False)

    @property
    def id(self):
        return self.data["id"]

    @property
    def deleted(self):
        return self.op == DELETE

    def wire(self):
        """The `event` object clients receive."""
        event = {"type": EVENT, "seq": self.seq, "entity": self.entity, "op": self.op, "data": self.data}
        if self.fp is not None:
            event["fp"] = self.fp
        return event

    @property
    def text(self):
        """The wire object, encoded once."""
        if self._text is None:
            from .frames import dumps

            self._text = dumps(self.wire())
        return self._text

    @classmethod
    def from_wire(cls, event, before=None):
        before = tuple(before) if before is not None else None
        return cls(event["seq"], event["entity"], event["op"], event["data"], before, event.get("fp"))


def upsert(seq, entity, row, before=None, fp=None):
    return Event(seq, entity, UPSERT, row, before, fp)


def delete(seq, entity, object_id, before=None, fp=None):
    return Event(seq, entity, DELETE, {"id": object_id}, before, fp)


# Between processes (the channel layer) ---------------------------------------------------------


class ChangesMessage(TypedDict):
    """A committed write's events, from its process to every hub (realtime/publish.py)."""

    type: Literal["stream.changes"]
    epoch: str
    events: list[dict]  # Event.wire()
    before: list[list | None]  # Event.before, in the same order


class AccessMessage(TypedDict, total=False):
    """Sessions that ended and users to check again (realtime/access.py)."""

    type: Literal["stream.access"]
    sessions: list[str]
    users: list
    everyone: bool


def changes_message(epoch, events):
    return {"type": LAYER_CHANGES, "epoch": epoch, "events": [e.wire() for e in events],
            "before": [None if e.before is None else list(e.before) for e in events]}


def events_of(message):
    """The Events of a ChangesMessage."""
    befores = message.get("before") or [None] * len(message["events"])
    return [Event.from_wire(event, before) for event, before in zip(message["events"], befores)]


# Server to client (docs/protocol.md) -----------------------------------------------------------


class EventFrame(TypedDict):
    type: Literal["event"]
    seq: int
    entity: str
    op: Literal["upsert", "delete"]
    data: dict
    fp: NotRequired[str]
    left: NotRequired[bool]  # a task that still exists but left the view's window


class Counts(TypedDict):
    """Tasks per status over the whole table, and `matched`: how many match the view."""

    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    matched: int


class EventsFrame(TypedDict):
    """v1: several events in order. v2 (a view): a range that stands for every change
    numbered `from`..`to`, with the items that concern this client."""

    type: Literal["events"]
    items: list[EventFrame]
    # v2 only:
    # from: int, to: int (TypedDict cannot spell "from"), counts, current, fp


class SyncFrame(TypedDict):
    type: Literal["sync"]
    epoch: str
    seq: int
    reset: bool
    deleted: dict[str, list]
    heartbeat_interval: NotRequired[float]
    part: NotRequired[int]
    parts: NotRequired[int]
    fp: NotRequired[str]
    view: NotRequired[dict]  # v2: the view as the server understood it
    counts: NotRequired[Counts]
    current: NotRequired[list]  # v2 with "current": each busy agent's running task
    # plus one list of rows per entity: "tasks", "agents", ...


class PingFrame(TypedDict):
    type: Literal["ping"]
    id: int
    seq: int
    epoch: str
    fp: NotRequired[str]


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    close: NotRequired[int]


SERVER_TYPES = {SYNC, EVENT, EVENTS, PING, "pong", "error"}
LAYER_TYPES = {LAYER_CHANGES, LAYER_ACCESS}

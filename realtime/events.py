"""The event vocabulary, typed in one place: what sequencing publishes, what the layer carries,
and every frame the server sends (docs/protocol.md). tests/test_events.py checks every frame
the server sends against these shapes (`check_frame`).

One numbered change is an `Event`: made by sequencing (realtime/sequencing.py) inside the
writer's transaction, carried between processes as a plain dict (`wire()`, plus the values
it had before, `before`), and encoded to JSON once (`text`) however many sockets and views
receive it.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, NotRequired, TypedDict, get_args, get_origin, get_type_hints

from .protocol import DELETE, EVENT, LAYER_ACCESS, LAYER_CHANGES, UPSERT

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

Counts = TypedDict("Counts", {"queued": int, "running": int, "succeeded": int, "failed": int, "cancelled": int,
                              "matched": int})
"""Tasks per status over the whole table, and `matched`: how many match the view."""

EventFrame = TypedDict("EventFrame", {
    "type": Literal["event"], "seq": NotRequired[int], "entity": str, "op": Literal["upsert", "delete"], "data": dict,
    "fp": NotRequired[str],
    "left": NotRequired[bool],  # in a range: the task still exists but left the window
})
"""One change. In a view's range an upsert's `seq` is its row's version; a delete that only
left the window has none."""

EventsFrame = TypedDict("EventsFrame", {
    "type": Literal["events"], "items": list,
    # v2 (a view): a range that stands for every change numbered `from`..`to`.
    "from": NotRequired[int], "to": NotRequired[int], "counts": NotRequired[Counts], "fp": NotRequired[str],
})

SyncFrame = TypedDict("SyncFrame", {
    "type": Literal["sync"], "epoch": str, "seq": int, "reset": bool, "deleted": dict,
    "heartbeat_interval": NotRequired[float], "part": NotRequired[int], "parts": NotRequired[int],
    "fp": NotRequired[str],
    "view": NotRequired[dict], "counts": NotRequired[Counts],  # v2: the view as understood; counts
    "current": NotRequired[list],  # v2 with "current": the running tasks
})
"""Plus one list of rows per registered entity, under its key ("tasks", "agents")."""

PingFrame = TypedDict("PingFrame", {"type": Literal["ping"], "id": int, "seq": int, "epoch": NotRequired[str]})
PongFrame = TypedDict("PongFrame", {"type": Literal["pong"], "id": object})
ErrorFrame = TypedDict("ErrorFrame", {"type": Literal["error"], "code": str, "message": str, "close": NotRequired[int],
                                      "retry_within": NotRequired[float]})  # 1012: come back within this many seconds

FRAMES = {"event": EventFrame, "events": EventsFrame, "sync": SyncFrame, "ping": PingFrame, "pong": PongFrame,
          "error": ErrorFrame}
SERVER_TYPES = set(FRAMES)
LAYER_TYPES = {LAYER_CHANGES, LAYER_ACCESS}
ROW_LISTS = {"current"}  # lists of rows beside the entities' own


def check_frame(frame, entity_keys=()):
    """What is wrong with a frame the server sends (an empty list when nothing is), by the
    types above: every key declared, every required key there, every value of its type.
    `entity_keys` are the sync's row lists ("tasks", "agents"); tests pass them."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    shape = FRAMES.get(kind)
    if shape is None:
        return [f"unknown frame type {kind!r}"]
    problems = []
    hints = get_type_hints(shape)
    extra = set(frame) - set(hints) - (set(entity_keys) | ROW_LISTS if kind == "sync" else set())
    if extra:
        problems.append(f"{kind}: undeclared keys {sorted(extra)}")
    for key in shape.__required_keys__:
        if key not in frame:
            problems.append(f"{kind}: no {key!r}")
    for key, hint in hints.items():
        if key in frame and not _fits(frame[key], hint):
            problems.append(f"{kind}.{key} = {frame[key]!r} is not {hint}")
    for key in entity_keys if kind == "sync" else ():
        if not isinstance(frame.get(key, []), list):
            problems.append(f"sync.{key} is not a list")
    if kind == "events":
        for item in frame.get("items", ()):
            problems += [f"item: {p}" for p in check_frame(item)]
    return problems


def _fits(value, hint):
    origin = get_origin(hint)
    if origin is NotRequired:
        return _fits(value, get_args(hint)[0])
    if origin is Literal:
        return value in get_args(hint)
    if hint is object:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__"):  # a TypedDict
        return isinstance(value, dict) and set(value) == set(get_type_hints(hint)) and all(
            _fits(value[k], h) for k, h in get_type_hints(hint).items())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True

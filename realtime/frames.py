"""Encoding what the server sends, in frames that never exceed REALTIME_MAX_SEND_BYTES.

ASGI servers cap the messages they send (daphne refuses anything over 1 MiB and closes the
socket), so no frame may grow with the data: every `events` batch and every `sync` part is
cut to fit, and no row can be larger than a frame (realtime/rows.py bounds each row's text).
Each event and row is JSON-encoded once; frames are joined from those pieces, so cutting
costs no second encoding.
"""
import json

from django.conf import settings

from .protocol import EVENTS, SYNC


def dumps(value):
    return json.dumps(value, separators=(",", ":"))


def limit():
    return settings.REALTIME_MAX_SEND_BYTES


def _chunks(pieces, budget):
    """Split encoded pieces into runs whose joined size (with commas) stays within `budget`.
    A piece larger than the budget on its own still travels, alone (rows are bounded, so
    this does not happen with the default limits)."""
    run, size = [], 0
    for piece in pieces:
        cost = len(piece) + 1
        if run and size + cost > budget:
            yield run
            run, size = [], 0
        run.append(piece)
        size += cost
    if run:
        yield run


_EVENTS_HEAD = '{"type":"%s","items":[' % EVENTS


def event_frames(events):
    """[(text, events of that frame)] for events in sequence order: one `event` frame for a
    lone event, else `events` batches that each fit the limit."""
    if len(events) == 1:
        return [(dumps(events[0]), events)]
    encoded = [dumps(event) for event in events]
    frames, start = [], 0
    for run in _chunks(encoded, limit() - len(_EVENTS_HEAD) - 2):
        part = events[start:start + len(run)]
        start += len(run)
        text = run[0] if len(run) == 1 else _EVENTS_HEAD + ",".join(run) + "]}"
        frames.append((text, part))
    return frames


def sync_frames(*, epoch, seq, reset, tasks, agents, deleted_tasks, deleted_agents, extras):
    """The `sync` answer as one frame, or as parts that each fit the limit.

    `tasks` and `agents` are encoded rows; the deletions are ids. Every part carries the same
    epoch, seq and reset; rows and deletions are spread over the parts in that order, and the
    union of the parts is the sync (PROTOCOL.md: a client applies them only when the last
    part has arrived)."""
    sections = (
        ("tasks", tasks), ("agents", agents),
        ("deleted_tasks", [str(i) for i in deleted_tasks]), ("deleted_agents", [str(i) for i in deleted_agents]),
    )
    head = {"type": SYNC, "epoch": epoch, "seq": seq, "reset": reset, **extras}
    # Room for the header, the four lists' punctuation and `"part":k,"parts":n`.
    budget = limit() - len(dumps(head)) - 120
    parts, current, size = [], {name: [] for name, _ in sections}, 0
    for name, pieces in sections:
        for piece in pieces:
            cost = len(piece) + 1
            if size and size + cost > budget:
                parts.append(current)
                current, size = {key: [] for key, _ in sections}, 0
            current[name].append(piece)
            size += cost
    parts.append(current)
    count = len(parts)
    prefix = dumps(head)[:-1]
    texts = []
    for index, part in enumerate(parts, 1):
        numbering = f',"part":{index},"parts":{count}' if count > 1 else ""
        texts.append(
            f'{prefix}{numbering},"tasks":[{",".join(part["tasks"])}],"agents":[{",".join(part["agents"])}],'
            f'"deleted":{{"tasks":[{",".join(part["deleted_tasks"])}],"agents":[{",".join(part["deleted_agents"])}]}}}}'
        )
    return texts

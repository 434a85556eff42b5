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
    """[(text, events of that frame)] for Events (realtime/events.py) in sequence order: one
    `event` frame for a lone event, else `events` batches that each fit the limit."""
    if len(events) == 1:
        return [(events[0].text, events)]
    encoded = [event.text for event in events]
    frames, start = [], 0
    for run in _chunks(encoded, limit() - len(_EVENTS_HEAD) - 2):
        part = events[start:start + len(run)]
        start += len(run)
        text = run[0] if len(run) == 1 else _EVENTS_HEAD + ",".join(run) + "]}"
        frames.append((text, part))
    return frames


def sync_frames(*, epoch, seq, reset, rows, deleted, extras):
    """The `sync` answer as one frame, or as parts that each fit the limit.

    `rows` maps each list's key ("tasks", "agents", or a view's side set such as "current")
    to its encoded rows; `deleted` maps entity keys to deleted ids. Every part carries the
    same epoch, seq and reset, and every key (empty lists where a part has none); rows and
    then deletions are spread over the parts in order, and the union of the parts is the
    sync (docs/protocol.md: a client applies them only when the last part has arrived)."""
    keys, gone_keys = list(rows), list(deleted) or list(rows)
    pieces = [(("rows", key), piece) for key in keys for piece in rows[key]]
    pieces += [(("deleted", key), str(i)) for key in gone_keys for i in deleted.get(key, ())]
    head = {"type": SYNC, "epoch": epoch, "seq": seq, "reset": reset, **extras}
    # Room for the header, the lists' punctuation and `"part":k,"parts":n`.
    budget = limit() - len(dumps(head)) - 40 * (len(keys) + len(gone_keys)) - 60

    def empty():
        return {**{("rows", key): [] for key in keys}, **{("deleted", key): [] for key in gone_keys}}

    parts, current, size = [], empty(), 0
    for slot, piece in pieces:
        cost = len(piece) + 1
        if size and size + cost > budget:
            parts.append(current)
            current, size = empty(), 0
        current[slot].append(piece)
        size += cost
    parts.append(current)
    count = len(parts)
    prefix = dumps(head)[:-1]
    texts = []
    for index, part in enumerate(parts, 1):
        numbering = f',"part":{index},"parts":{count}' if count > 1 else ""
        lists = "".join(f',"{key}":[{",".join(part[("rows", key)])}]' for key in keys)
        gone = ",".join(f'"{key}":[{",".join(part[("deleted", key)])}]' for key in gone_keys)
        texts.append(f'{prefix}{numbering}{lists},"deleted":{{{gone}}}}}')
    return texts

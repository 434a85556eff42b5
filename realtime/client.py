"""The client's side of the stream, by docs/protocol.md's client rules, without a transport.

`StreamState` is what a client holds and how each frame the server sends changes it. Whoever
owns the socket sends `subscribe_frame()` after connecting, hands every decoded frame it
receives to `apply()`, and sends `subscribe_frame()` again when `apply()` says something
was missed; the transport, the reconnect policy and any bookkeeping (timelines, latencies,
arrival stamps) stay with the owner. The Python clients all use it: the tests' client
(tests/support/stream.py), the benchmarks' load client (bench/loadclient.py: thousands of
them share one core, so the per-frame path stays short), and `manage.py check_stream`. The
browser's copy of these rules is static/realtime/store.js.

It keeps the dashboard's entities: tasks (the whole table without a view, the view's window
with one), agents, and with a view the running tasks beside the window (`current`). Changes
to other entities advance `last` and are not kept. It imports nothing from Django, so it
runs where no Django is configured (the load client).
"""
from .protocol import DELETE, EVENT, EVENTS, PING, SUBSCRIBE, SYNC


def put_row(table, row):
    """Keep `row` unless `table` holds a newer version of it: a row never goes back."""
    old = table.get(row["id"])
    if old is None or old["version"] <= row["version"]:
        table[row["id"]] = row


class StreamState:
    """A client's copy of the stream (protocol v1) or of a view's window of it (v2).

    `epoch`, `last` (the number of the last change applied) and `fp` (the fingerprint of that
    position) are what a resubscribe sends; `view` is the view it subscribes with (None: the
    whole stream) and `echo` the view as the server understood it. `counts` are the server's
    counts with a view. The counters (`syncs`, `events`, `ranges`, `gaps`, `duplicates`, ...)
    say what was applied and what was ignored."""

    # Slots keep attribute access cheap however many attributes a subclass adds (the load
    # client adds a score of its own; past 30 in one __dict__, CPython's lookups slow down).
    __slots__ = ("view", "epoch", "last", "fp", "tasks", "agents", "current", "counts", "echo", "subscribing",
                 "staged", "syncs", "resets", "events", "ranges", "gaps", "duplicates", "parts_received", "bad_parts")

    def __init__(self, view=None):
        self.view = view
        self.epoch = self.last = self.fp = None
        self.tasks, self.agents, self.current = {}, {}, {}
        self.counts = self.echo = None
        self.subscribing = False  # a subscribe is outstanding: its sync covers what comes before it
        self.staged = None  # (key, parts so far) of a sync arriving in parts
        self.syncs = self.resets = self.events = self.ranges = 0
        self.gaps = self.duplicates = self.parts_received = self.bad_parts = 0

    # What the client sends --------------------------------------------------------------------

    def subscribe_frame(self):
        """The `subscribe` frame for the client's position and view; called when it is sent
        (until its sync arrives, events and ranges are left to that sync)."""
        self.subscribing = True
        frame = {"type": SUBSCRIBE, "since": self.last, "epoch": self.epoch, "fp": self.fp}
        if self.view is not None:
            frame["view"] = self.view
        return frame

    def connection_lost(self):
        """Called when the connection ends: a sync cut off with it is dropped whole, and the
        next connection's subscribe starts from where the client is."""
        self.subscribing = False
        self.staged = None

    # What the server sends ----------------------------------------------------------------------

    def apply(self, frame):
        """Apply one decoded frame from the server. Returns True when something was missed (a
        gap, or a ping ahead of `last` or from another epoch): send `subscribe_frame()`."""
        kind = frame["type"]
        if kind == EVENT:
            return not self.apply_event(frame)
        if kind == EVENTS:
            if "from" in frame:
                return not self.apply_range(frame)
            for event in frame["items"]:
                if not self.apply_event(event):
                    return True
            return False
        if kind == SYNC:
            whole = self.take_sync_part(frame)
            if whole is not None:
                self.apply_sync(whole)
            return False
        if kind == PING:
            return self.missed(frame)
        return False

    def missed(self, ping):
        """True when a `ping` says the client missed something: a newer number than `last`,
        or another epoch (not while a subscribe is outstanding)."""
        if self.subscribing or self.last is None:
            return False
        return ping.get("seq", 0) > self.last or ping.get("epoch") not in (None, self.epoch)

    def take_sync_part(self, frame):
        """Stage the parts of a sync sent in parts; return the whole sync once the last part
        is in (None before). A part that does not follow the staged ones starts over."""
        parts = frame.get("parts")
        if not parts:
            self.staged = None
            return frame
        key = (frame["epoch"], frame["seq"], frame["reset"], parts)
        if frame["part"] == 1 or self.staged is None or self.staged[0] != key or len(self.staged[1]) + 1 != frame["part"]:
            self.staged = (key, []) if frame["part"] == 1 else None
            if self.staged is None:
                self.bad_parts += 1
                return None
        self.staged[1].append(frame)
        self.parts_received += 1
        if frame["part"] < parts:
            return None
        frames, self.staged = self.staged[1], None
        whole = dict(frames[0], tasks=[], agents=[], deleted={"tasks": [], "agents": []})
        if "current" in frames[0]:
            whole["current"] = []
        for part in frames:
            for key in ("tasks", "agents", "current"):
                if key in whole:
                    whole[key] += part.get(key, [])
            whole["deleted"]["tasks"] += part["deleted"].get("tasks", [])
            whole["deleted"]["agents"] += part["deleted"].get("agents", [])
        return whole

    def apply_sync(self, frame):
        """A whole `sync`: afterwards the client equals the database (or the view's window of
        it) at `seq`. `reset` replaces everything; a view's sync replaces the task rows with
        its window whatever `reset` says, and brings the counts, the echo and `current`."""
        if frame["reset"]:
            self.tasks, self.agents = {}, {}
            self.resets += 1
        if "view" in frame:
            self.tasks = {}
            self.echo, self.counts = frame["view"], frame["counts"]
            self.current = {row["id"]: row for row in frame.get("current", ())}
        elif self.echo is not None:  # the whole stream after a view: no window, no counts
            self.echo = self.counts = None
            self.current = {}
        for row in frame["tasks"]:
            put_row(self.tasks, row)
        for row in frame["agents"]:
            put_row(self.agents, row)
        for object_id in frame["deleted"].get("tasks", ()):
            self.tasks.pop(object_id, None)
        for object_id in frame["deleted"].get("agents", ()):
            self.agents.pop(object_id, None)
        self.epoch, self.last, self.fp = frame["epoch"], frame["seq"], frame.get("fp")
        self.syncs += 1
        self.subscribing = False

    def apply_event(self, event):
        """One event (protocol v1), applied only when it is the next number. Returns False
        when something was missed; a duplicate, or an event before the sync, is ignored."""
        last = self.last
        if last is None or self.subscribing:
            return True  # the sync in flight covers it
        seq = event["seq"]
        if seq <= last:
            self.duplicates += 1
            return True
        if seq > last + 1:
            self.gaps += 1
            return False
        entity, row = event["entity"], event["data"]
        table = self.tasks if entity == "task" else self.agents if entity == "agent" else None
        if table is None:
            pass
        elif event["op"] == DELETE:
            table.pop(row["id"], None)
        else:  # put_row(table, row), inline: this is the load client's per-frame path
            old = table.get(row["id"])
            if old is None or old["version"] <= row["version"]:
                table[row["id"]] = row
        self.last, self.fp = seq, event.get("fp")
        self.events += 1
        return True

    def apply_range(self, frame):
        """A view's range: every change numbered `from`..`to`, of which `items` concern this
        window. Applied only when `from == last + 1`; returns False when something was missed."""
        last = self.last
        if last is None or self.subscribing:
            return True  # the sync in flight covers it
        if frame["to"] <= last:
            self.duplicates += 1
            return True
        if frame["from"] != last + 1:
            self.gaps += 1
            return False
        for item in frame["items"]:
            entity, row = item["entity"], item["data"]
            if entity == "agent":
                if item["op"] == DELETE:
                    self.agents.pop(row["id"], None)
                else:
                    put_row(self.agents, row)
                continue
            # A task entering, changing or leaving the window, or a running task beside it.
            table = self.tasks if entity == "task" else self.current if entity == "current" else None
            if table is None:
                continue
            if item["op"] == DELETE:
                table.pop(row["id"], None)
            else:
                table[row["id"]] = row
        if "counts" in frame:
            self.counts = frame["counts"]
        self.last, self.fp = frame["to"], frame.get("fp")
        self.ranges += 1
        return True

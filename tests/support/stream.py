"""A WebSocket client that applies the stream by PROTOCOL.md's client rules.

Used by the integration, fault and end-to-end tests (and the benchmarks) to check that what
a client ends up with equals the database.
"""
import asyncio
import json
import time

import websockets


class StreamClient:
    """Connects, subscribes, answers pings, applies sync/events, resubscribes on gaps, and
    reconnects (with resume) when the connection drops, until `stop()`."""

    def __init__(self, url, cookie, origin, reconnect=True, answer_pings=True):
        self.url, self.cookie, self.origin = url, cookie, origin
        self.reconnect, self.answer_pings = reconnect, answer_pings
        self.epoch, self.last = None, None
        self.tasks, self.agents = {}, {}
        self.syncs, self.resets, self.events, self.gaps, self.connects = 0, 0, 0, 0, 0
        self.close_codes, self.errors = [], []
        self.subscribing = False
        self.ws = None
        self.stopped = False
        self._task = None
        self.changed = asyncio.Event()

    # Applying, by the client rules -----------------------------------------------------

    def apply_rows(self, table, rows):
        for row in rows:
            old = table.get(row["id"])
            if old is None or old["version"] <= row["version"]:
                table[row["id"]] = row

    def apply_sync(self, frame):
        if frame["reset"]:
            self.tasks, self.agents = {}, {}
            self.resets += 1
        self.apply_rows(self.tasks, frame["tasks"])
        self.apply_rows(self.agents, frame["agents"])
        for object_id in frame["deleted"]["tasks"]:
            self.tasks.pop(object_id, None)
        for object_id in frame["deleted"]["agents"]:
            self.agents.pop(object_id, None)
        self.epoch, self.last = frame["epoch"], frame["seq"]
        self.syncs += 1
        self.subscribing = False

    def apply_event(self, event):
        """Return False when a gap was found (the caller resubscribes)."""
        if self.last is None or self.subscribing:
            return True  # not synced yet: the sync will cover it
        if event["seq"] <= self.last:
            return True
        if event["seq"] > self.last + 1:
            self.gaps += 1
            return False
        table = self.tasks if event["entity"] == "task" else self.agents
        if event["op"] == "delete":
            table.pop(event["data"]["id"], None)
        else:
            self.apply_rows(table, [event["data"]])
        self.last = event["seq"]
        self.events += 1
        return True

    # The connection ---------------------------------------------------------------------

    async def subscribe(self):
        self.subscribing = True
        await self.ws.send(json.dumps({"type": "subscribe", "since": self.last, "epoch": self.epoch}))

    async def handle(self, frame):
        kind = frame.get("type")
        if kind == "sync":
            self.apply_sync(frame)
        elif kind in ("event", "events"):
            for event in frame["items"] if kind == "events" else [frame]:
                if not self.apply_event(event):
                    await self.subscribe()
                    break
        elif kind == "ping":
            if self.answer_pings:
                await self.ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
            if (frame.get("epoch") not in (None, self.epoch) or (self.last is not None and frame["seq"] > self.last)) and not self.subscribing:
                await self.subscribe()
        elif kind == "error":
            self.errors.append(frame)
        self.changed.set()

    async def run_once(self):
        headers = {"Cookie": self.cookie, "Origin": self.origin}
        async with websockets.connect(self.url, additional_headers=headers, ping_interval=None,
                                      max_size=None, open_timeout=10) as ws:
            self.ws = ws
            self.connects += 1
            await self.subscribe()
            async for message in ws:
                await self.handle(json.loads(message))

    async def run(self):
        delay = 0.1
        while not self.stopped:
            try:
                await self.run_once()
            except websockets.ConnectionClosed as exc:
                self.close_codes.append(exc.rcvd.code if exc.rcvd else 1006)
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
                self.close_codes.append(type(exc).__name__)
            self.ws = None
            self.subscribing = False
            if not self.reconnect or self.stopped:
                break
            if self.close_codes and isinstance(self.close_codes[-1], int) and 4500 <= self.close_codes[-1] < 5000:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def start(self):
        self._task = asyncio.ensure_future(self.run())
        return self

    async def stop(self):
        self.stopped = True
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    # Checking against the database -----------------------------------------------------------

    def versions(self):
        return (
            {i: r["version"] for i, r in self.tasks.items()},
            {i: r["version"] for i, r in self.agents.items()},
        )

    async def wait_for(self, predicate, timeout=15):
        end = time.monotonic() + timeout
        while not predicate(self):
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        return True


def database_versions():
    """{id: version} of every task and agent in the database (call from a sync context)."""
    from tasks.models import Agent, Task

    return (
        dict(Task.objects.values_list("id", "version")),
        dict(Agent.objects.values_list("id", "version")),
    )


def database_rows():
    """The rows as the wire shows them, for comparing whole rows."""
    from realtime.rows import serialize
    from tasks.models import Agent, Task

    return (
        {t.pk: serialize(t) for t in Task.objects.all()},
        {a.pk: serialize(a) for a in Agent.objects.all()},
    )

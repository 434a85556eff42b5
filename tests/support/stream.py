"""A WebSocket client that applies the stream by docs/protocol.md's client rules.

Used by the integration, fault and end-to-end tests to check that what a client ends up with
equals the database. The rules themselves are realtime/client.py's (`StreamState`); this
module adds the transport (`websockets`), the reconnect policies and the tests' bookkeeping.
"""
import asyncio
import json
import time

import websockets

from realtime.client import StreamState


class StreamClient(StreamState):
    """Connects, subscribes, answers pings, applies frames by the client rules
    (realtime/client.py), resubscribes when something was missed, and reconnects (with
    resume) when the connection drops, until `stop()`."""

    def __init__(self, url, cookie, origin, reconnect=True, answer_pings=True, view=None):
        super().__init__(view)  # a view: protocol v2 (docs/protocol.md, "Views")
        self.url, self.cookie, self.origin = url, cookie, origin
        self.reconnect, self.answer_pings = reconnect, answer_pings
        self.bytes_received = 0
        self.bad_frames = []  # frames that do not fit realtime/events.py (checked at stop())
        self.connects = 0
        self.close_codes, self.errors = [], []
        self.largest_frame = 0
        self.ws = None
        self.stopped = False
        self._task = None
        self.changed = asyncio.Event()

    async def subscribe(self):
        await self.ws.send(json.dumps(self.subscribe_frame()))

    async def change_view(self, view):
        """Subscribe again with another view (its sync replaces the window)."""
        self.view = view
        if self.ws is not None:
            await self.subscribe()

    async def handle(self, frame):
        from realtime.events import check_frame

        problems = check_frame(frame, ("tasks", "agents", "notes"))
        if problems:
            self.bad_frames.append((json.dumps(frame)[:300], problems))
        kind = frame.get("type")
        if kind == "ping" and self.answer_pings:
            await self.ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
        elif kind == "error":
            self.errors.append(frame)
        if self.apply(frame):
            await self.subscribe()
        self.changed.set()

    async def run_once(self):
        headers = {"Cookie": self.cookie, "Origin": self.origin}
        async with websockets.connect(self.url, additional_headers=headers, ping_interval=None,
                                      max_size=None, open_timeout=10) as ws:
            self.ws = ws
            self.connects += 1
            await self.subscribe()
            async for message in ws:
                self.largest_frame = max(self.largest_frame, len(message))
                self.bytes_received += len(message)
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
            self.connection_lost()
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
        assert not self.bad_frames, f"frames that do not fit realtime/events.py: {self.bad_frames[:3]}"

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


def database_window(view):
    """({id: version} of the view's window, its counts) as the database holds them now (call
    from a sync context): the rule from outside (docs/protocol.md, "Views")."""
    from realtime import registry

    entity = registry.windowed()
    parsed = entity.views.parse(view, entity.watched)
    window = {t.pk: t.version for t in entity.views.newest(parsed, parsed.limit)}
    per_status = {s: entity.model.objects.filter(status=s).count() for s in entity.views.statuses}
    per_status["matched"] = entity.views.query(parsed).count()
    return window, per_status


def database_versions():
    """{id: version} of every task and agent in the database (call from a sync context)."""
    from tasks.models import Agent, Task

    return (
        dict(Task.objects.values_list("id", "version")),
        dict(Agent.objects.values_list("id", "version")),
    )


async def receive_until(ws, predicate, within=30):
    """Frames from `ws` (a websockets connection) until one satisfies `predicate`: that frame,
    decoded. Pings and other frames are read and dropped; fails after `within` seconds."""
    end = time.monotonic() + within
    seen = []
    while True:
        remaining = end - time.monotonic()
        assert remaining > 0, f"no such frame within {within} s; the last ones: {seen[-5:]}"
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        except asyncio.TimeoutError:
            raise AssertionError(f"no such frame within {within} s; the last ones: {seen[-5:]}") from None
        if predicate(frame):
            return frame
        seen.append(frame)


async def close_code(ws, within=30):
    """Read and drop frames until the server closes `ws`: its close code (1006 when no close
    frame came). Fails after `within` seconds."""
    try:
        await receive_until(ws, lambda frame: False, within)
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006


def database_rows():
    """The rows as the wire shows them, for comparing whole rows."""
    from realtime.rows import serialize
    from tasks.models import Agent, Task

    return (
        {t.pk: serialize(t) for t in Task.objects.all()},
        {a.pk: serialize(a) for a in Agent.objects.all()},
    )


# Added for the fault and scale-out tests (tests/test_faults.py, tests/test_scaleout.py) -----

import random as _random


class ResilientStreamClient(StreamClient):
    """A StreamClient with the browser client's timing rules (static/realtime/constants.js),
    scaled down for tests:

    - an idle deadline: the connection is abandoned when nothing arrives for the server's
      heartbeat interval (from `sync.heartbeat_interval`) plus `idle_grace`;
    - 1012 (service restart): reconnect after `restart_base + random() * restart_spread`;
    - any other retryable close: full-jitter backoff, `backoff_min..min(cap, base * 2^n)`;
    - 4500-4999: stop.

    It also records when things happened (`timeline`), the latency of every event it
    applies (receive time minus the row's `updated_at`), and can stop reading for a while
    (`pause_reading`) to play a slow client."""

    def __init__(self, url, cookie, origin, *, idle_grace=2.0, restart_base=0.2, restart_spread=2.0,
                 backoff_base=0.2, backoff_min=0.05, backoff_cap=2.0, max_queue=16, rcvbuf=None,
                 rng=None, **kwargs):
        super().__init__(url, cookie, origin, **kwargs)
        self.rcvbuf = rcvbuf  # a small receive buffer makes TCP push back on a paused reader
        self.idle_grace, self.restart_base, self.restart_spread = idle_grace, restart_base, restart_spread
        self.backoff_base, self.backoff_min, self.backoff_cap = backoff_base, backoff_min, backoff_cap
        self.max_queue = max_queue
        self.rng = rng or _random.Random()
        self.interval = None  # from the server's sync frame
        self.timeline = []  # (monotonic time, what, detail)
        self.latencies = []  # (monotonic receive time, seconds from updated_at to receipt)
        self.idle_timeouts = 0
        self.attempt = 0
        self._reading = asyncio.Event()
        self._reading.set()
        self.connected_at = None
        self.synced_at = None

    def mark(self, what, detail=None):
        self.timeline.append((time.monotonic(), what, detail))

    def pause_reading(self):
        """Stop taking frames off the socket; the socket's buffers fill and TCP pushes back."""
        self._reading.clear()
        self.mark("pause")

    def resume_reading(self):
        self._reading.set()
        self.mark("resume")

    def apply_sync(self, frame):
        super().apply_sync(frame)
        if frame.get("heartbeat_interval"):
            self.interval = float(frame["heartbeat_interval"])
        self.synced_at = time.monotonic()
        self.mark("sync", frame["seq"])

    def apply_event(self, event):
        before = self.last
        ok = super().apply_event(event)
        if ok and self.last != before and event["op"] == "upsert" and event["data"].get("updated_at"):
            from datetime import datetime

            stamp = datetime.fromisoformat(event["data"]["updated_at"]).timestamp()
            self.latencies.append((time.monotonic(), time.time() - stamp))
        return ok

    def idle_deadline(self):
        interval = self.interval if self.interval is not None else 25.0
        return interval + self.idle_grace

    async def run_once(self):
        headers = {"Cookie": self.cookie, "Origin": self.origin}
        extra = {}
        if self.rcvbuf:
            import socket
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port)), 5)
            except (OSError, asyncio.TimeoutError):
                sock.close()
                raise
            extra["sock"] = sock
        ws = await websockets.connect(self.url, additional_headers=headers, ping_interval=None,
                                      max_size=None, open_timeout=5, close_timeout=1,
                                      max_queue=self.max_queue, **extra)
        self.ws = ws
        self.connects += 1
        self.connected_at = time.monotonic()
        self.mark("open")
        try:
            await self.subscribe()
            while True:
                if not self._reading.is_set():
                    await self._reading.wait()
                try:
                    message = await asyncio.wait_for(ws.recv(), self.idle_deadline())
                except asyncio.TimeoutError:
                    # Nothing at all for interval + grace: the path is dead (half-open TCP,
                    # a stuck proxy). Abandon it without a closing handshake.
                    self.idle_timeouts += 1
                    self.mark("idle_timeout")
                    ws.transport.abort()
                    raise
                self.largest_frame = max(self.largest_frame, len(message))
                await self.handle(json.loads(message))
        finally:
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()

    def retry_delay(self, code):
        if code == 1012:
            return self.restart_base + self.rng.random() * self.restart_spread
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self.attempt, 16))
        return self.backoff_min + self.rng.random() * max(0.0, ceiling - self.backoff_min)

    async def run(self):
        while not self.stopped:
            code = None
            try:
                await self.run_once()
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
            except asyncio.TimeoutError:
                code = "idle_timeout" if self.ws is not None else "TimeoutError"
            except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
                code = type(exc).__name__
            if self.stopped:
                break
            self.close_codes.append(code)
            self.mark("closed", code)
            self.ws = None
            self.connection_lost()
            if not self.reconnect or (isinstance(code, int) and 4500 <= code < 5000):
                break
            # A connection that synced and stayed up resets the attempt counter.
            if self.synced_at is not None and self.connected_at is not None and self.synced_at >= self.connected_at:
                self.attempt = 0
            delay = self.retry_delay(code)
            self.attempt += 1
            self.mark("retry_in", delay)
            await asyncio.sleep(delay)

    async def stop(self):
        self.stopped = True
        self._reading.set()
        await super().stop()

    def reconnected_after(self, moment):
        """Monotonic time of the first sync after `moment`, or None."""
        for stamp, what, _ in self.timeline:
            if stamp > moment and what == "sync":
                return stamp
        return None

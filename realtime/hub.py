"""The hub: one per server process (per event loop), between the channel layer and the sockets.

Why a hub instead of every consumer joining the group itself: the layer then carries each
change once per process instead of once per socket, the change is put in order and encoded
to a frame once, and one heartbeat loop serves every socket. It is the only member of the
stream group in its process; sockets register with it (`join`/`leave`).

What it guarantees:
- Events go out in sequence order. An event that arrives early waits up to
  REALTIME_REORDER_WINDOW for the ones before it; then the gap is passed on and the clients
  heal it by resubscribing.
- The database is the truth: once a second the hub reads the stream head. If the head is
  ahead of what arrived through the layer (a dropped message, Redis down, a write made in
  another process on the in-process layer), it pings every client with the head so they
  resubscribe and get a delta.
- Heartbeat: every socket gets a `ping` every REALTIME_HEARTBEAT_INTERVAL seconds and is
  closed with 4008 if the `pong` is later than REALTIME_HEARTBEAT_TIMEOUT. This also bounds
  how much a stuck reader can make the server buffer.
- On SIGTERM every socket is closed with 1012 before the server's own handler runs.
"""
import asyncio
import itertools
import json
import logging
import signal
import threading
import weakref

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils.module_loading import import_string

from . import metrics
from .daphne_compat import stop_listening
from .protocol import CLOSE_HEARTBEAT_TIMEOUT, CLOSE_SERVICE_RESTART, EVENTS, LAYER_CHANGES, PING, STREAM_GROUP
from .snapshot import prune_tombstones, stream_position

log = logging.getLogger("realtime.hub")

HEAD_POLL_SECONDS = 1.0
GROUP_REFRESH_SECONDS = 60.0
PRUNE_SECONDS = 600.0

_hubs = weakref.WeakKeyDictionary()


def get_hub():
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


def serving_loop():
    """The running event loop whose hub is started (a server process), or None."""
    for loop, hub in list(_hubs.items()):
        if hub._ready is not None and loop.is_running() and not loop.is_closed():
            return loop
    return None


def encode(events):
    """One frame for one or several contiguous events, encoded once for every socket."""
    frame = events[0] if len(events) == 1 else {"type": EVENTS, "items": events}
    return json.dumps(frame, separators=(",", ":"))


class Hub:
    def __init__(self):
        self.members = set()
        self.epoch = None
        self.last = 0  # newest sequence number fanned out
        # Newest sequence number the clients should have: the last one sent, or the database
        # head when the layer lost something. Pings carry it; it must never run ahead of
        # what was sent, or every client would resync for nothing.
        self.known_head = 0
        self.channel = None
        self._pending = {}  # seq -> event that arrived before its predecessors
        self._outbox = []  # released events waiting for the next flush
        self._flusher = None
        self._gap_since = None
        self._behind = None  # (a database head not yet received, when it was seen)
        self._ping_ids = itertools.count(1)
        self._ready = None
        self._tasks = []
        self.closing = False

    # Membership --------------------------------------------------------------------------

    async def join(self, consumer):
        """Called by a consumer once its socket is accepted and authenticated."""
        await self.ensure_started()
        loop = asyncio.get_running_loop()
        consumer.next_ping_at = loop.time() + settings.REALTIME_HEARTBEAT_INTERVAL
        self.members.add(consumer)
        metrics.OPEN_CONNECTIONS.inc()

    def leave(self, consumer):
        """Called on every way out of a consumer (see DashboardConsumer.__call__)."""
        if consumer in self.members:
            self.members.discard(consumer)
            metrics.OPEN_CONNECTIONS.dec()

    # Start and stop ----------------------------------------------------------------------

    async def ensure_started(self):
        """Join the stream group and start the loops, once per hub."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._start()
            except BaseException as exc:
                self._ready.set_exception(exc)
                ready, self._ready = self._ready, None
                ready.exception()  # mark retrieved; the next join tries again
                raise
            self._ready.set_result(True)
        await asyncio.shield(self._ready)

    async def _start(self):
        layer = get_channel_layer()
        self.epoch, head = await database_sync_to_async(stream_position)()
        self.last = self.known_head = head
        metrics.HEAD.set(head)
        if layer is not None:
            # Join before anyone reads the database, so no committed change falls between.
            # If the layer is down, start anyway: the head check keeps clients correct.
            await self._join(layer)
            self._tasks.append(asyncio.ensure_future(self._receive_loop(layer)))
        self._tasks.append(asyncio.ensure_future(self._heartbeat_loop()))
        self._tasks.append(asyncio.ensure_future(self._head_loop(layer)))
        install_sigterm_handler(self)

    async def shutdown(self, code=CLOSE_SERVICE_RESTART):
        """Close every socket with `code` (1012: come back after a random delay)."""
        self.closing = True
        for consumer in tuple(self.members):
            await consumer.close_with(code)

    # Incoming changes --------------------------------------------------------------------

    async def _join(self, layer):
        try:
            if self.channel is None:
                # The default prefix matters: channels-redis serves all of a process's
                # channels from one list keyed by it; another prefix would starve the rest.
                self.channel = await layer.new_channel()
            await layer.group_add(STREAM_GROUP, self.channel)
            return True
        except Exception as exc:
            log.warning("could not join the stream group yet: %s", exc)
            return False

    async def _receive_loop(self, layer):
        failures = 0
        while True:
            try:
                if self.channel is None and not await self._join(layer):
                    raise ConnectionError("the channel layer is unreachable")
                message = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("channel layer receive failed (%s); retrying", exc)
                await asyncio.sleep(min(5.0, 0.2 * 2 ** min(failures, 5)))
                await self._join(layer)
                continue
            failures = 0
            if message.get("type") == LAYER_CHANGES:
                await self.accept(message.get("epoch"), message["events"])

    async def accept(self, epoch, events):
        """Take events from the layer: put them in order and fan out what is ready."""
        if epoch is not None and epoch != self.epoch:
            self._new_epoch(epoch, events[0]["seq"] - 1)
        ready = []
        for event in events:
            seq = event["seq"]
            if seq <= self.last:
                continue  # a duplicate, or late after its gap was given up on
            self._pending[seq] = event
        while self.last + 1 in self._pending:
            self.last += 1
            ready.append(self._pending.pop(self.last))
        self._gap_since = asyncio.get_running_loop().time() if self._pending else None
        if ready:
            self._queue(ready)

    def _new_epoch(self, epoch, head):
        log.info("stream epoch changed to %s at %s", epoch, head)
        self.epoch, self.last, self.known_head = epoch, head, head
        self._pending.clear()

    async def _give_up_gap(self):
        """The missing events did not come: send what we have; clients heal the hole."""
        ready = [self._pending.pop(seq) for seq in sorted(self._pending)]
        metrics.GAPS.inc(ready[0]["seq"] - self.last - 1)
        self.last = ready[-1]["seq"]
        self._gap_since = None
        self._queue(ready)

    def _queue(self, events):
        """Hold released events until the loop is idle, then send them as one frame.

        Under a burst the layer hands over message after message without the loop waiting,
        so everything released meanwhile goes out together: one frame and one encoding per
        burst instead of one per change. A lone change goes out on the next loop turn."""
        self._outbox.extend(events)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self):
        asyncio.ensure_future(self._flush())

    async def _flush(self):
        try:
            while self._outbox:  # one flush at a time keeps every socket's frames in order
                events, self._outbox = self._outbox, []
                await self._fanout(events)
        finally:
            self._flusher = None

    async def _fanout(self, events):
        self.known_head = max(self.known_head, events[-1]["seq"])
        metrics.HEAD.set(self.known_head)
        text = encode(events)
        metrics.EVENT_FRAMES_SENT.inc(len(self.members))
        for consumer in tuple(self.members):
            await consumer.deliver(text, events)

    # The database as the truth -----------------------------------------------------------

    async def _head_loop(self, layer):
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        jobs = [PeriodicJob(prune_tombstones, PRUNE_SECONDS)] + [
            PeriodicJob(import_string(path), every) for path, every in settings.REALTIME_PERIODIC_JOBS
        ]
        while True:
            await asyncio.sleep(HEAD_POLL_SECONDS)
            for job in jobs:
                await job.run_if_due(loop.time())
            try:
                epoch, head = await database_sync_to_async(stream_position)()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not read the stream head: %s", exc)
                continue
            await self.check_head(epoch, head)
            if layer is not None and loop.time() >= next_refresh:
                next_refresh = loop.time() + GROUP_REFRESH_SECONDS
                await self._join(layer)

    async def check_head(self, epoch, head):
        """Compare the database head with what arrived; tell clients if they are behind."""
        now = asyncio.get_running_loop().time()
        if epoch != self.epoch:
            self._new_epoch(epoch, head)
            await self.announce_head()
            return
        if head <= self.last:
            self._behind = None
            return
        if self._behind is None or self.last >= self._behind[0]:
            # Under steady writes the head is always a little ahead: remember this head and
            # only call it lost if it has still not arrived a reorder window from now.
            self._behind = (head, now)
            return
        target, seen_at = self._behind
        if now - seen_at >= settings.REALTIME_REORDER_WINDOW:
            metrics.GAPS.inc(target - self.last)
            log.info("sequence %s committed but never arrived (last received %s); clients resync", target, self.last)
            self._pending = {s: e for s, e in self._pending.items() if s > target}
            self.last = self.known_head = target
            self._behind = None
            metrics.HEAD.set(target)
            await self.announce_head()
            if self.last + 1 in self._pending:  # what waited behind the hole can go now
                await self.accept(self.epoch, [])

    async def announce_head(self):
        """Ping every socket now, so a client behind the head resubscribes at once."""
        now = asyncio.get_running_loop().time()
        for consumer in tuple(self.members):
            if consumer.ping_id is None:
                await self._ping(consumer, now)

    # Heartbeat ---------------------------------------------------------------------------

    async def _heartbeat_loop(self):
        tick = min(1.0, settings.REALTIME_HEARTBEAT_INTERVAL / 4, settings.REALTIME_HEARTBEAT_TIMEOUT / 4)
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + tick
            await asyncio.sleep(tick)
            try:
                now = loop.time()
                if now - expected > tick:  # this process stalled: the pongs could not be read
                    self.excuse_stall(now - expected)
                await self.heartbeat(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat round failed")

    def excuse_stall(self, seconds):
        """Move every pong deadline back by a stall of the process, so clients are not closed
        for a delay that was the server's own."""
        log.warning("event loop stalled for %.1f s; pong deadlines extended", seconds)
        for consumer in self.members:
            if consumer.ping_id is not None:
                consumer.pong_deadline += seconds

    async def heartbeat(self, now):
        """One round: close sockets whose pong is late, ping those that are due."""
        if self._pending and self._gap_since is not None and now - self._gap_since >= settings.REALTIME_REORDER_WINDOW:
            await self._give_up_gap()
        for consumer in tuple(self.members):
            if consumer.ping_id is not None:
                if now > consumer.pong_deadline:
                    metrics.HEARTBEAT_TIMEOUTS.inc()
                    await consumer.close_with(CLOSE_HEARTBEAT_TIMEOUT)
            elif now >= consumer.next_ping_at:
                await self._ping(consumer, now)

    async def _ping(self, consumer, now):
        consumer.ping_id = next(self._ping_ids)
        consumer.pong_deadline = now + settings.REALTIME_HEARTBEAT_TIMEOUT
        consumer.next_ping_at = now + settings.REALTIME_HEARTBEAT_INTERVAL
        frame = {"type": PING, "id": consumer.ping_id, "seq": self.known_head, "epoch": self.epoch}
        metrics.PING_FRAMES_SENT.inc()
        await consumer.send_text(json.dumps(frame, separators=(",", ":")))

    def pong(self, consumer, ping_id):
        """A pong arrived; it counts only if it answers the outstanding ping."""
        if consumer.ping_id is not None and ping_id == consumer.ping_id:
            consumer.ping_id = None
            return True
        return False


class PeriodicJob:
    """A sync function the hub runs every `every` seconds in a worker thread (no extra
    service needed). Jobs that must run once across processes take a lease themselves."""

    def __init__(self, func, every):
        self.func, self.every, self.due = func, every, 0.0

    async def run_if_due(self, now):
        if now < self.due:
            return
        self.due = now + self.every
        try:
            await database_sync_to_async(self.func)()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job %s failed", self.func.__qualname__)


_sigterm_installed = False


def install_sigterm_handler(hub):
    """On SIGTERM, close every socket with 1012 first, then run the server's own handler.

    Daphne sends no close frame when it stops, so without this clients see 1006 and cannot
    tell a deploy from a crash."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()

    def chain(signum, frame):
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    async def close_then_chain(signum, frame):
        stop_listening()
        try:
            # Closing thousands of sockets takes a while on a busy process: give it up to 10 s.
            await asyncio.wait_for(hub.shutdown(), max(10.0, settings.REALTIME_SHUTDOWN_GRACE * 4))
            await asyncio.sleep(settings.REALTIME_SHUTDOWN_GRACE)  # let the close frames go out
        finally:
            chain(signum, frame)

    def on_sigterm(signum, frame):
        if hub.closing:
            return chain(signum, frame)
        log.info("SIGTERM: closing %d sockets with 1012", len(hub.members))
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(close_then_chain(signum, frame)))

    signal.signal(signal.SIGTERM, on_sigterm)
    _sigterm_installed = True

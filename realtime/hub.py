"""The hub: one per server process (per event loop), between the channel layer and the sockets.

Why a hub instead of every consumer joining the group itself: the layer then carries each
change once per process instead of once per socket, the change is put in order and encoded
to frames once, and one heartbeat serves every socket. It is the only member of the stream
group in its process; sockets register with it (`join`/`leave`).

This module orders and fans out; the hub's other jobs each have a module of their own:
realtime/heartbeat.py (pings, pongs, dead sockets), realtime/guard.py (access re-checks),
realtime/jobs.py (periodic jobs) and realtime/lifecycle.py (SIGTERM, daphne's listener).

What it guarantees:
- Events go out in sequence order. An event that arrives early waits up to
  REALTIME_REORDER_WINDOW for the ones before it; then the gap is passed on and the clients
  heal it by resubscribing.
- No frame is larger than REALTIME_MAX_SEND_BYTES (realtime/frames.py).
- The database is the truth: once a second the hub reads the stream head. If the head is
  ahead of what arrived through the layer (a dropped message, Redis down, a write made in
  another process on the in-process layer), it pings every client with the head so they
  resubscribe. If the head is behind what it has seen, history moved backwards
  (realtime/epochs.py): the epoch is rotated and every client resets.
"""
import asyncio
import gc
import logging
import weakref

from channels.layers import get_channel_layer
from django.conf import settings

from . import dbwork, metrics
from .changes import fingerprint_at
from .daphne_compat import log_installed
from .events import Event, events_of
from .frames import event_frames
from .live import LiveViews
from .protocol import CLOSE_SERVICE_RESTART, LAYER_ACCESS, LAYER_CHANGES, STREAM_GROUP
from .reads import Reads, Shared
from .snapshot import stream_position

log = logging.getLogger("realtime.hub")

HEAD_POLL_SECONDS = 1.0
HEAD_READ_TIMEOUT = 2.0  # a head read slower than this counts as "the database is down"
GROUP_REFRESH_SECONDS = 60.0

_hubs = weakref.WeakKeyDictionary()


# Sockets a process takes back per second after a restart (its handshakes, access checks and
# view syncs: docs/performance.md, the storm). A process closing N sockets asks their clients
# to come back within N / this many seconds (at least MIN, at most MAX): a lone page returns
# at once, a thousand spread over their share of the next process's capacity.
RECONNECTS_PER_SECOND = 400.0
SPREAD_MIN, SPREAD_MAX = 0.5, 30.0


def restart_spread(sockets):
    """Seconds within which the clients of `sockets` sockets closed with 1012 should come back."""
    return round(min(SPREAD_MAX, max(SPREAD_MIN, sockets / RECONNECTS_PER_SECOND)), 2)


def get_hub():
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


_frozen = False


def freeze_startup_objects():
    """Once per process: move what start-up loaded (Django, the URLconf, the app's modules;
    it lives as long as the process) out of the garbage collector's scans. A full collection
    stops the loop and every socket with it; under 1,000 sockets it took 142 ms, 79 ms with
    this (bench/trace.py). The collection first, so no garbage is frozen with them."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


class Hub:
    def __init__(self):
        from .guard import Guard
        from .heartbeat import Heartbeat
        from .jobs import PeriodicJobs

        self.members = set()
        self.raw = set()  # sockets that get every event (a stream without a view, or syncing)
        self.per_user = {}  # user id -> the open sockets of that user in this process
        self.views = LiveViews(self)
        self.reads = Reads()  # one socket at a time reads what many want (realtime/reads.py)
        self.shared = Shared()  # the syncs those reads built, by claimed position
        self.epoch = None
        self.last = 0  # newest sequence number released in order
        self.sent = 0  # newest sequence number fanned out (the views are at this number)
        self._sent_fp = None  # its fingerprint, when kept
        self._progress = asyncio.Event()  # set (and replaced) each time `sent` moves
        self.drops = 0  # times the views were dropped (a syncing socket checks it did not miss one)
        # Newest sequence number the clients should have: the last one sent, or the database
        # head when the layer lost something. Pings carry it; it must never run ahead of
        # what was sent, or every client would resync for nothing.
        self.known_head = 0
        self.channel = None
        self.heartbeat = Heartbeat(self)
        self.guard = Guard(self)
        self.jobs = PeriodicJobs()
        self._pending = {}  # seq -> event that arrived before its predecessors
        self._gap_timer = None
        self._outbox = []  # released events waiting for the next flush
        self._flusher = None
        self._behind = None  # (a database head not yet received, when it was seen)
        self._ready = None
        self._tasks = []
        self.closing = False
        self.database_up = True

    # Membership --------------------------------------------------------------------------

    def sockets_of(self, user_id):
        return len(self.per_user.get(user_id, ()))

    def pending_of(self, user_id):
        """Bytes the sockets of `user_id` hold unsent in this process."""
        return sum(consumer.pending() for consumer in self.per_user.get(user_id, ()))

    async def join(self, consumer):
        """Called by a consumer once its socket is accepted and authenticated, before it
        answers anything: from now on the hub pings it and may fan out to it."""
        await self.ensure_started()
        self.members.add(consumer)
        self.per_user.setdefault(consumer.user_id, set()).add(consumer)
        self.heartbeat.add(consumer)
        metrics.OPEN_CONNECTIONS.inc()

    def leave(self, consumer):
        """Called on every way out of a consumer (see DashboardConsumer.__call__)."""
        if consumer in self.members:
            self.members.discard(consumer)
            self.raw.discard(consumer)
            self.heartbeat.remove(consumer)
            sockets = self.per_user.get(consumer.user_id, set())
            sockets.discard(consumer)
            if not sockets:
                self.per_user.pop(consumer.user_id, None)
            metrics.OPEN_CONNECTIONS.dec()

    # Start and stop ----------------------------------------------------------------------

    @property
    def started(self):
        """The hub has joined the layer: access changes pushed from now on reach its guard."""
        return self._ready is not None and self._ready.done()

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
        from . import publish
        from .lifecycle import install_sigterm_handler

        layer = get_channel_layer()
        self.epoch, head = await dbwork.run("head", stream_position)
        self.last = self.known_head = self.sent = head
        self._sent_fp = await dbwork.run("head", fingerprint_at, head)
        metrics.HEAD.set(head)
        metrics.DATABASE_UP.set(1)
        if layer is not None:
            # Join before anyone reads the database, so no committed change falls between.
            # If the layer is down, start anyway: the head check keeps clients correct.
            await self._join(layer)
            self._tasks.append(asyncio.ensure_future(self._receive_loop(layer)))
        self._tasks.append(asyncio.ensure_future(self.heartbeat.run()))
        self._tasks.append(asyncio.ensure_future(self.guard.run()))
        self._tasks.append(asyncio.ensure_future(self.jobs.run()))
        self._tasks.append(asyncio.ensure_future(self._head_loop(layer)))
        publish.serve_locally(asyncio.get_running_loop(), self.on_layer_message)  # this process's writes come here first
        install_sigterm_handler(self)
        log_installed()
        freeze_startup_objects()

    async def shutdown(self, code=CLOSE_SERVICE_RESTART, handshake_timeout=5.0):
        """Close every socket with `code` (1012: come back after a random delay), then wait
        until each close handshake ended (at most `handshake_timeout`).

        The server only queues a close frame; stopping the process before the peer has
        answered it would cut the connection under a client that is slow to read, and it
        would see 1006 (a crash) instead of 1012 (a restart). Daphne's close handshakes are
        given 5 s at shutdown for the same reason (realtime/daphne_compat.py)."""
        self.closing = True
        closing = tuple(self.members)
        within = restart_spread(len(closing))
        for consumer in closing:
            await consumer.close_with(code, "the server is restarting", retry_within=within)
        pending = [asyncio.ensure_future(consumer.gone.wait()) for consumer in closing
                   if getattr(consumer, "gone", None) is not None and not consumer.gone.is_set()]
        if pending:
            done, still = await asyncio.wait(pending, timeout=handshake_timeout)
            for task in still:
                task.cancel()
            if still:
                log.warning("shutdown: %d of %d close handshakes had not ended after %.0f s",
                            len(still), len(closing), handshake_timeout)

    # Incoming messages -------------------------------------------------------------------

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
            await self.on_layer_message(message)

    async def on_layer_message(self, message):
        """A message from the layer (or from this process's own writers)."""
        kind = message.get("type")
        if kind == LAYER_CHANGES:
            await self.put_in_order(message.get("epoch"), events_of(message))
        elif kind == LAYER_ACCESS:
            await self.guard.handle(message)

    async def put_in_order(self, epoch, events):
        """Take Events (realtime/events.py; wire dicts are taken too): put them in order and
        fan out what is ready."""
        events = [e if isinstance(e, Event) else Event.from_wire(e) for e in events]
        if epoch is not None and epoch != self.epoch and events:
            self._new_epoch(epoch, events[0].seq - 1)
        ready = []
        for event in events:
            seq = event.seq
            if seq <= self.last:
                continue  # a duplicate, or late after its gap was given up on
            self._pending[seq] = event
        while self.last + 1 in self._pending:
            self.last += 1
            ready.append(self._pending.pop(self.last))
        self._watch_gap()
        if ready:
            self._queue(ready)

    def _new_epoch(self, epoch, head):
        log.info("stream epoch changed to %s at %s", epoch, head)
        metrics.EPOCH_ROTATIONS.inc()
        self.epoch, self.last, self.known_head = epoch, head, head
        self._pending.clear()
        self._outbox = []
        self._skip_to(head, f"the epoch changed to {epoch}", rewind=True)
        self._watch_gap()

    def _watch_gap(self):
        """Give up on missing events a reorder window after the first one waited for them."""
        if not self._pending:
            if self._gap_timer is not None:
                self._gap_timer.cancel()
                self._gap_timer = None
        elif self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(settings.REALTIME_REORDER_WINDOW, self._give_up_gap)

    def _give_up_gap(self):
        """The missing events did not come: send what we have; clients heal the hole."""
        self._gap_timer = None
        if not self._pending:
            return
        ready = [self._pending.pop(seq) for seq in sorted(self._pending)]
        metrics.GAPS.inc(ready[0].seq - self.last - 1)
        self.views.drop_all(f"sequence {self.last + 1} never arrived")
        self.drops += 1
        self.last = ready[-1].seq
        self._queue(ready)

    def _queue(self, events):
        """Hold released events until the loop is idle, then send them as few frames.

        Under a burst the layer hands over message after message without the loop waiting,
        so everything released meanwhile goes out together: one encoding per burst instead
        of one per change. A lone change goes out on the next loop turn."""
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
        """Every socket without a view gets the events; every view its range (realtime/live.py)."""
        self.known_head = max(self.known_head, events[-1].seq)
        metrics.HEAD.set(self.known_head)
        if self.raw:
            for text, part in event_frames(events):
                metrics.EVENT_FRAMES_SENT.inc(len(self.raw))
                for consumer in tuple(self.raw):
                    consumer.deliver(text, part)
        fresh = [e for e in events if e.seq > self.sent]  # older ones were skipped (_skip_to)
        if not fresh:
            return
        if fresh[0].seq != self.sent + 1 or fresh[-1].seq - fresh[0].seq != len(fresh) - 1:
            self.views.drop_all(f"events {self.sent + 1}-{fresh[-1].seq} arrived with a hole")
            self.drops += 1
        self._moved(fresh[-1].seq, fresh[-1].fp)
        self.views.advance(fresh)

    def _moved(self, seq, fp=None):
        self.sent, self._sent_fp = seq, fp
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    def _skip_to(self, seq, why, rewind=False):
        """Numbers up to `seq` will never be fanned out (lost, or another epoch began at
        `seq`: `rewind`): the views cannot follow, and sockets waiting for them must not wait."""
        self.views.drop_all(why)
        self.drops += 1
        self._moved(seq if rewind else max(self.sent, seq))

    def fp_of(self, seq):
        """The fingerprint of the change numbered `seq`, when it is the newest fanned out."""
        return self._sent_fp if seq == self.sent else None

    async def reached(self, seq, timeout):
        """Wait until `seq` has been fanned out (True), or `timeout` seconds passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sent < seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    # The database as the truth -----------------------------------------------------------

    async def _head_loop(self, layer):
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while True:
            await asyncio.sleep(HEAD_POLL_SECONDS)
            seen = self.last  # before the read: events may arrive while it runs
            try:
                epoch, head = await asyncio.wait_for(dbwork.run("head", stream_position), HEAD_READ_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    exc = f"no answer within {HEAD_READ_TIMEOUT:g} s"
                if self.database_up:
                    log.warning("could not read the stream head (the database is not answering): %s", exc)
                self._database(False)
                continue
            self._database(True)
            if epoch == self.epoch and head < seen:
                await self._history_moved_back(epoch, head, seen)
                continue
            await self.check_head(epoch, head)
            if layer is not None and loop.time() >= next_refresh:
                next_refresh = loop.time() + GROUP_REFRESH_SECONDS
                await self._join(layer)

    def _database(self, up):
        if up and not self.database_up:
            log.info("the database answers again")
        self.database_up = up
        metrics.DATABASE_UP.set(1 if up else 0)

    async def _history_moved_back(self, epoch, head, seen):
        from .epochs import rotate_epoch

        reason = f"the database head {head} is behind sequence {seen}, which this process has seen"
        try:
            await dbwork.run("head", rotate_epoch, reason, expected_epoch=epoch)
        except Exception as exc:
            log.warning("could not rotate the epoch: %s", exc)

    async def check_head(self, epoch, head):
        """Compare the database head with what arrived; tell clients if they are behind."""
        now = asyncio.get_running_loop().time()
        if epoch != self.epoch:
            self._new_epoch(epoch, head)
            await self.heartbeat.ping_all()
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
            self._skip_to(target, f"sequence {target} committed but never arrived")
            await self.heartbeat.ping_all()
            if self.last + 1 in self._pending:  # what waited behind the hole can go now
                await self.put_in_order(self.epoch, [])
            else:
                self._watch_gap()

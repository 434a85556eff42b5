"""The WebSocket consumer for /ws/dashboard/ (protocol: docs/protocol.md).

A consumer authenticates, registers with its process's hub, answers `subscribe` with a
`sync` and then forwards the hub's events. Per-socket state is a handful of attributes; the
hub does the heartbeat, the access re-checks and the fan-out for all sockets at once.

Nothing on the path of a frame from the client waits for the database: Channels' own
dispatch would close old database connections on its single database thread before every
handler (so a pong would queue behind any slow query), and a `subscribe` is answered by a
task of its own, so pongs keep flowing while its sync is built (realtime/dbwork.py).
"""
import asyncio
import json
import logging
import re
import time

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from . import dbwork, metrics, registry
from .access import check_session, fingerprint, session_key
from .frames import dumps, event_frames
from .daphne_compat import BUFFERED
from .hub import get_hub
from .outbox import Outbox, start_eagerly
from .protocol import (
    CLIENT_TYPES, CLOSE_HEARTBEAT_TIMEOUT, CLOSE_PROTOCOL_VIOLATION, CLOSE_RATE_LIMITED, CLOSE_SERVER_ERROR,
    CLOSE_SERVICE_RESTART, CLOSE_TOO_LARGE, CLOSE_TOO_MANY_SOCKETS, CLOSE_TRY_LATER, ERR_BAD_FIELD, ERR_BAD_JSON,
    ERR_BAD_VIEW, ERR_BINARY, ERR_CLOSING, ERR_NOT_OBJECT, ERR_UNAVAILABLE, ERR_UNKNOWN_TYPE, ERR_VIEW_REQUIRED, ERROR,
    MAX_CONSECUTIVE_ERRORS, PING, PONG,
)
from .snapshot import StreamTooLarge, build_sync, build_view_seed, verified_position
from .viewspec import ViewError

log = logging.getLogger("realtime.consumer")

# Each socket is a member of its hub, not of a layer group: no per-socket layer channel.
NO_LAYER = "no-per-socket-channel-layer"
# A sync the database cannot answer is retried this long, then the socket is told to come back.
SYNC_RETRY_SECONDS = 30.0
BUFFER_LIMIT = 100_000
# A socket holding this much unsent also checks its user's total (REALTIME_MAX_USER_OUTBOX_BYTES):
# below it, a fan-out to thousands of sockets costs no per-user sum.
USER_CHECK_BYTES = 1 << 20


class TokenBucket:
    """Per-socket rate limit: `rate` messages per second sustained, bursts up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# A view's window is seeded at some number H; the socket then waits for the hub to fan out
# H. Committed numbers arrive within the reorder window, or the hub gives them up.
# A pong as clients send it (JSON.stringify, json.dumps with or without spaces); any other
# spelling takes the general path.
PONG_FRAME = re.compile(r'\{"type": ?"pong", ?"id": ?(\d{1,18})\}')
REACH_SECONDS = 5.0
DRAIN_POLL_SECONDS = 0.05
VIEW_ATTEMPTS = 5  # seeds read for one subscribe before the socket is told to come back
KNOWN = object()  # in place of a session key: the access check just made stands (see _access_key)


def access_fresh_seconds():
    """How long the connect's access check stands for the socket's first subscribe: as long
    as any open socket's check stands between two periodic re-checks. A reconnect storm's
    subscribes may wait seconds behind each other; they must not each check again."""
    return settings.REALTIME_AUTH_RECHECK_INTERVAL

# A sync built for one socket answers another that claims the same position (since, epoch,
# fp) for this long, while the stream has not moved: a reconnect storm reads the database
# once per claim and second, not once per socket (realtime/reads.py Shared).
SHARED_SYNC_SECONDS = 1.0


def checked_sync(key, since, epoch, fp=None):
    """In a database thread: check the socket's access again (unless `key` is KNOWN), then
    build its sync. Returns (access, frames, head, reset); frames are None when access ended."""
    access = None if key is KNOWN else check_session(key)
    if access is not None and access.code is not None:
        return access, None, None, None
    return (access, *build_sync(verified_position(since, fp), epoch))


def checked_view_seed(key, view, since, epoch, fp, seed_window, sides):
    """In a database thread: check the socket's access again (unless `key` is KNOWN), then
    read its view's seed."""
    access = None if key is KNOWN else check_session(key)
    if access is not None and access.code is not None:
        return access, None
    return access, build_view_seed(view, verified_position(since, fp), epoch, seed_window, sides)



def _log_close_failure(task):
    if not task.cancelled() and task.exception() is not None:
        log.debug("close failed: %s", task.exception())


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = NO_LAYER

    # Sync state: "new" (no subscribe yet, or it was refused), "syncing" (events are
    # buffered), "live" (with a view: `live` is its LiveView, realtime/live.py).
    state = "new"
    live = None
    hub = None
    closed = False
    user_id = None
    username = ""
    session_key = None
    session_fingerprint = None
    expires_at = None  # wall-clock seconds when the session expires, if known
    _sync_task = None
    _wanted = None  # the newest (since, epoch, fp, view) asked for and not yet answered
    buffer_full = False  # events fanned out while syncing were dropped (past BUFFER_LIMIT)
    _synced_at = float("-inf")
    _checked = None  # (loop time, guard.heard) of the connect's access check, until the first subscribe
    _asked_at = None  # loop time the first subscribe arrived

    async def __call__(self, scope, receive, send):
        """Run the connection; leave the hub on every way out.

        Channels does not call disconnect() when a handler raises or the server cancels the
        task at shutdown, so cleanup lives here, around the whole connection."""
        self.gone = asyncio.Event()  # set once the connection has ended (hub.shutdown waits)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.gone.set()
            self._leave("ended")

    async def dispatch(self, message):
        """Called with every ASGI message. Unlike Channels' dispatch, it does not first close
        old database connections on the shared database thread: the consumer's database
        work runs in realtime/dbwork.py's pools, which do that themselves."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        """Called on the WebSocket handshake.

        The handshake is accepted first, then access is checked: refusals are closed with a
        code (a browser cannot see an HTTP refusal and would retry forever), and daphne drops
        any handshake not accepted within its connect timeout (5 s), which in a reconnect
        storm threw away sockets that were only waiting their turn for the access check
        (docs/performance.md, finding 4). Frames the client sends meanwhile wait: Channels
        hands a consumer its next message only once connect() has returned."""
        await self.accept()
        hub = get_hub()
        if hub.closing:  # shutting down: come back to another process, without a query
            return await self._refuse(CLOSE_SERVICE_RESTART, "the server is restarting")
        key = session_key(self.scope)
        # Taken before the read: when, and how many pushed access changes the guard had
        # handled, if it hears them already (see _access_key).
        checked = (asyncio.get_running_loop().time(), hub.guard.heard) if hub.started else None
        try:
            access = await dbwork.run("access", check_session, key)
        except Exception as exc:
            log.warning("could not authenticate a socket (%s); told to come back", exc)
            return await self._refuse(CLOSE_TRY_LATER, "the database is not answering; try again shortly")
        if access.code is not None:
            return await self._refuse(access.code, access.reason)
        if hub.closing:  # this process is shutting down: come back to another one
            return await self._refuse(CLOSE_SERVICE_RESTART, "the server is restarting")
        limit = settings.REALTIME_MAX_SOCKETS_PER_USER
        if hub.sockets_of(access.user_id) >= limit:
            return await self._refuse(
                CLOSE_TOO_MANY_SOCKETS, f"{access.username} has {limit} dashboards open already; close some and retry"
            )
        self.user_id, self.username, self.expires_at = access.user_id, access.username, access.expires_at
        self.session_key, self.session_fingerprint = key, fingerprint(key)
        self._checked = checked
        self.buffer = []
        self.errors = 0
        self.bucket = TokenBucket(settings.REALTIME_RATE_LIMIT, settings.REALTIME_RATE_BURST)
        try:
            await hub.join(self)  # before connect() returns, so the first subscribe finds it a member
        except Exception as exc:
            log.warning("the hub could not start (%s); socket told to come back", exc)
            return await self._refuse(CLOSE_TRY_LATER, "the server is starting; try again shortly")
        self.hub = hub
        metrics.CONNECTIONS.inc()
        log.info("connect user=%s channel=%s", self.username, id(self))

    async def _refuse(self, code, reason):
        metrics.REFUSED.labels(code=str(code)).inc()
        log.info("refused code=%s reason=%s", code, reason)
        await self._send_closing(code, reason)
        await self.close(code)

    async def disconnect(self, code):
        """Called when the connection has ended (the client left, or our close completed)."""
        self.gone.set()
        self._leave(f"client closed code={code}")

    def _leave(self, reason):
        task = self._sync_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self._detach()
        if self.hub is not None:
            self.hub.leave(self)
            self.hub = None
            log.info("disconnect channel=%s reason=%s", id(self), reason)

    # Incoming frames -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        """Called with every frame; checks size, rate and shape before dispatching."""
        hub = self.hub
        if hub is None:
            return
        if not self.bucket.take():
            return await self.close_with(CLOSE_RATE_LIMITED)
        hub.heartbeat.heard(self, asyncio.get_running_loop().time())
        if bytes_data is not None:
            return await self._reject(ERR_BINARY, "binary frames are not supported; send JSON text")
        if len(text_data) > settings.REALTIME_MAX_FRAME_BYTES:
            return await self.close_with(CLOSE_TOO_LARGE)
        pong = PONG_FRAME.fullmatch(text_data)
        if pong is not None:  # most frames a socket sends: no JSON parser, no dispatch
            hub.heartbeat.pong(self, int(pong.group(1)))
            self.errors = 0
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            return await self._reject(ERR_BAD_JSON, "frame is not valid JSON")
        if not isinstance(content, dict):
            return await self._reject(ERR_NOT_OBJECT, "frame must be a JSON object with a type")
        await self.receive_json(content)

    async def receive_json(self, content):
        """Called with every well-formed JSON object."""
        kind = content.get("type")
        if kind not in CLIENT_TYPES:
            return await self._reject(ERR_UNKNOWN_TYPE, f"unknown type {kind!r}; expected one of {sorted(CLIENT_TYPES)}")
        if kind == PONG:
            if not _is_int(content.get("id")):
                return await self._reject(ERR_BAD_FIELD, "pong.id must be an integer")
            self.hub.heartbeat.pong(self, content["id"])
        elif kind == PING:
            ping_id = content.get("id")
            if isinstance(ping_id, bool) or not isinstance(ping_id, (int, str, type(None))):
                return await self._reject(ERR_BAD_FIELD, "ping.id must be an integer or a string")
            await self.send_text(dumps({"type": PONG, "id": ping_id}))
        else:
            await self._subscribe_frame(content)
            return
        self.errors = 0

    async def _reject(self, code, message):
        metrics.BAD_FRAMES.labels(code=code).inc()
        self.errors += 1
        if self.errors >= MAX_CONSECUTIVE_ERRORS:
            return await self.close_with(CLOSE_PROTOCOL_VIOLATION)
        await self.send_text(dumps({"type": ERROR, "code": code, "message": message}))

    # Sync and events -----------------------------------------------------------------------

    async def _subscribe_frame(self, content):
        """A `subscribe`: check its fields and its view (a bad one is answered with an error
        frame and builds nothing), then answer it."""
        since, epoch, fp = content.get("since"), content.get("epoch"), content.get("fp")
        if since is not None and (not _is_int(since) or since < 0):
            return await self._reject(ERR_BAD_FIELD, "subscribe.since must be null or a non-negative integer")
        if epoch is not None and not isinstance(epoch, str):
            return await self._reject(ERR_BAD_FIELD, "subscribe.epoch must be null or a string")
        if fp is not None and (not isinstance(fp, str) or len(fp) > 64):
            return await self._reject(ERR_BAD_FIELD, "subscribe.fp must be null or the fingerprint the server sent")
        view = None
        if content.get("view") is not None:
            entity = registry.windowed()
            if entity is None:
                return await self._reject(ERR_BAD_VIEW, "this server streams no entity in windows; subscribe without a view")
            try:
                view = entity.views.parse(content["view"], entity.watched)
            except ViewError as exc:
                return await self._reject(ERR_BAD_VIEW, str(exc))
        self.errors = 0
        self.request_sync(since, epoch, fp, view)

    def request_sync(self, since, epoch, fp=None, view=None):
        """A `subscribe` arrived: answer it from the socket's sync task (one per socket).

        Subscribes closer together than REALTIME_MIN_SUBSCRIBE_INTERVAL, or arriving while a
        sync is being built, are answered once, for the newest position (and view) asked for."""
        self._wanted = (since, epoch, fp, view)
        if self._checked is not None and self._asked_at is None:
            self._asked_at = asyncio.get_running_loop().time()
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.ensure_future(self._sync_loop())

    async def _sync_loop(self):
        loop = asyncio.get_running_loop()
        while self._wanted is not None and not self.closed:
            wait = self._synced_at + settings.REALTIME_MIN_SUBSCRIBE_INTERVAL - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._drained()  # the answer to the last subscribe is out first
            if self.closed:
                return
            wanted, self._wanted = self._wanted, None
            self._synced_at = loop.time()
            try:
                await self.subscribe(*wanted)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug, not the database: say so rather than retry forever
                log.exception("sync failed; closing with 1011")
                await self.close_with(CLOSE_SERVER_ERROR)

    async def _drained(self):
        """Wait while this socket still holds unsent frames: subscribes that arrive meanwhile
        are answered once, when its reader has taken the last answer. A reader that never
        does is closed by its late pong (4008), so the wait ends."""
        while self.pending() > 0 and not self.closed:
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def subscribe(self, since, epoch, fp=None, view=None):
        """Answer with a sync, then switch to live changes without losing or reordering any.

        Events the hub fans out while the database is read are buffered: without a view, those
        newer than the sync's `seq` follow it; with one, they join the view's seed to the
        window the hub keeps (realtime/live.py)."""
        self._detach()
        self.state = "syncing"
        self.buffer, self.buffer_full = [], False
        self.hub.raw.add(self)
        if view is None:
            await self._subscribe_stream(since, epoch, fp)
        else:
            await self._subscribe_view(since, epoch, fp, view)

    def _access_key(self):
        """What a subscribe's access check gets: the session key, or KNOWN for the first
        subscribe that arrived within access_fresh_seconds() of the connect's check, when no
        access change was pushed to this process since the check. Nothing is missed by that:
        the socket has been a hub member since its check, so a change pushed later reaches it
        through the guard, and a change that is not pushed is left to the periodic re-check,
        as for any open socket. A reconnect storm then checks each socket once, not twice,
        however long its subscribe waits behind the others' (the arrival counts, not the turn)."""
        checked, self._checked = self._checked, None
        if checked is not None and self.hub is not None:
            at, heard = checked
            asked = self._asked_at if self._asked_at is not None else asyncio.get_running_loop().time()
            if self.hub.guard.heard == heard and asked - at < access_fresh_seconds():
                return KNOWN
        return self.session_key

    def _accepted(self, access):
        """Keep what a subscribe's check said (None: the connect's check stands)."""
        if access is not None:
            self.expires_at = access.expires_at

    async def _subscribe_stream(self, since, epoch, fp):
        """The whole stream (protocol v1): a sync of every row, then every event.

        As for views, one socket at a time reads the sync of a position; sockets that claim
        the same position meanwhile wait for it and take its answer while the stream has not
        moved (at most SHARED_SYNC_SECONDS old), when their connect's check stands."""
        hub = self.hub
        key = self._access_key()
        claim = ("stream", since, epoch, fp)
        await hub.reads.wait(claim, REACH_SECONDS)
        if self.hub is None:
            return
        shared = hub.shared.get(claim, hub.sent, hub.epoch, SHARED_SYNC_SECONDS) if key is KNOWN else None
        if shared is not None:
            texts, head, reset = shared
            metrics.SHARED_SYNCS.inc()
        else:
            reading = hub.reads.begin(claim)
            try:
                result = await self._build(checked_sync, key, since, epoch, fp)
            finally:
                hub.reads.end(claim, reading)
            if result is None or self.hub is None:
                return
            if isinstance(result, StreamTooLarge):
                self._unsubscribed()
                return await self.send_text(dumps({"type": ERROR, "code": ERR_VIEW_REQUIRED, "message": str(result)}))
            access, texts, head, reset = result
            if access is not None and access.code is not None:
                return await self.close_with(access.code, access.reason)
            self._accepted(access)
            if head == hub.sent:
                hub.shared.put(claim, head, hub.epoch, (texts, head, reset))
        metrics.SYNCS.labels(kind="reset" if reset else "delta").inc()
        log.info("resync channel=%s since=%s head=%s reset=%s parts=%d", id(self), since, head, reset, len(texts))
        for text in texts:
            await self.send_text(text)
        while self.buffer:
            events, self.buffer = [e for e in self.buffer if e.seq > head], []
            if events:
                head = events[-1].seq
                for text, _ in event_frames(events):
                    await self.send_text(text)
        self.state = "live"  # no await between the empty check and this line

    async def _subscribe_view(self, since, epoch, fp, view):
        """A window (protocol v2): the view's sync, then its ranges.

        One socket at a time reads a view's window that this process does not keep yet, and
        one at a time the sync of a position in it; the others that ask for the same meanwhile
        wait for that read (bounded), then join the window it made, and take the sync it built
        for their position (_join_shared) or read only what lies beside the window. A storm on
        one view reads its window once, and each position about once a second."""
        hub = self.hub
        key = self._access_key()
        claim = (view.key, since, epoch, fp)
        for _ in range(VIEW_ATTEMPTS):
            for what in (view.key, claim):
                await hub.reads.wait(what, REACH_SECONDS)
            if self.hub is None:
                return
            if key is KNOWN and self._join_shared(view, claim):
                return
            seed_window = hub.views.find(view) is None
            reads = [(what, hub.reads.begin(what))
                     for what in ([view.key] if seed_window else []) + [claim]]
            try:
                done = await self._seed_and_join(key, view, since, epoch, fp, seed_window, claim)
            finally:
                for what, reading in reads:
                    hub.reads.end(what, reading)
            if done:
                return
        log.warning("could not join view %s after %d reads; socket told to come back", view.echo, VIEW_ATTEMPTS)
        await self.close_with(CLOSE_TRY_LATER, "the server could not follow your view; try again shortly")

    async def _seed_and_join(self, key, view, since, epoch, fp, seed_window, claim):
        """One read of the view's seed and the join that follows; True when the socket is
        answered (live, closed or gone), False when it must read again."""
        hub = self.hub
        drops = hub.drops
        sides = [name for name in view.sides if name not in hub.views.sides]
        result = await self._build(checked_view_seed, key, view, since, epoch, fp, seed_window, sides)
        if result is None or self.hub is None:
            return True
        access, seed = result
        if access is not None and access.code is not None:
            await self.close_with(access.code, access.reason)
            return True
        self._accepted(access)
        if seed_window or sides:
            metrics.VIEW_SEEDS.inc()
        if not await hub.reached(seed.head, REACH_SECONDS) or hub.drops != drops or self.hub is None:
            return False  # the hub could not follow from the seed's number: read again
        if self.buffer_full:  # the events since the read did not all fit: read again
            self.buffer, self.buffer_full = [], False
            return False
        live = await self._attach(view, seed)
        if live is not None and self.buffer_full:  # waiting, the buffer overflowed: read again
            hub.views.detach(self, live)
            self.buffer, self.buffer_full = [], False
            return False
        if live is None:
            return False
        await self._went_live(live, seed, since, claim)
        return True

    async def _attach(self, view, seed):
        """Join the view's live window, waiting (bounded) while it reads rows it lacks."""
        hub = self.hub
        drops = hub.drops
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REACH_SECONDS
        while not self.closed and hub.drops == drops:
            live = hub.views.attach(self, view, seed, self.buffer)
            if live is not None:
                return live
            waiting = hub.views.find(view)
            if waiting is None or loop.time() >= deadline:
                return None  # seed it again
            try:
                await asyncio.wait_for(waiting.ready.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                return None
            await asyncio.sleep(0)  # let the range that ended the wait go out first
        return None

    async def _went_live(self, live, seed, since, claim):
        """Send the sync of `live` at its number, and from now on its ranges."""
        key = (live.seq, "reset" if seed.reset else since)
        texts = live.syncs.get(key)
        if texts is None:
            others, deleted = compose_others(seed, self.buffer, live.seq)
            texts = live.syncs[key] = self.hub.views.sync_texts(
                live, others, epoch=seed.epoch, reset=seed.reset, deleted=deleted,
                fp=seed.fp if live.seq == seed.head else None)
        if seed.epoch == self.hub.epoch and live.seq == self.hub.sent:
            self.hub.shared.put(claim, live.seq, seed.epoch, texts)
        self._live_with(live, texts)

    def _join_shared(self, view, claim):
        """Join `view` on the sync another socket's read built for the same claim, at most
        SHARED_SYNC_SECONDS ago, at the view's current number, in the hub's epoch; True when
        it did (no database read, no await: nothing can move the view in between).

        The answer is the one a read would give: the window and counts are the view's own at
        its number, and the rest of the sync (the other entities at that number, what was
        deleted since `since`, a reset or not for this since/epoch/fp) is what the database
        held at that number. The hub forgets the answers when its number moves (attach needs
        the view at that number too), so an answer never outlives the number it was built at;
        the time bound keeps a claim's verdict as fresh as a read that finished a second ago
        (a restore under a quiet process is checked again)."""
        hub = self.hub
        live = hub.views.find(view)
        texts = hub.shared.get(claim, hub.sent, hub.epoch, SHARED_SYNC_SECONDS) if live is not None else None
        if texts is None or hub.views.attach(self, view, None, ()) is not live:
            return False
        metrics.SHARED_SYNCS.inc()
        self._live_with(live, texts)
        return True

    def _live_with(self, live, texts):
        self.live, self.state = live, "live"
        self.hub.raw.discard(self)
        self.buffer = []
        metrics.SYNCS.labels(kind="view").inc()
        log.info("view sync channel=%s view=%s seq=%s parts=%d", id(self), live.view.echo, live.seq, len(texts))
        for text in texts:
            self._put(text)

    async def _build(self, func, *args):
        """The access check and the sync (`func` in a database thread), retried while the
        database does not answer (the socket stays open and is told once); after
        SYNC_RETRY_SECONDS it is told to come back. A refused stream is returned, not raised."""
        loop = asyncio.get_running_loop()
        delay, first_failure = 0.25, None
        while not self.closed:
            try:
                return await dbwork.run("sync", func, *args)
            except StreamTooLarge as refused:
                return refused
            except DatabaseError as exc:
                metrics.SYNC_WAITS.inc()
                now = loop.time()
                if first_failure is None:
                    first_failure = now
                    log.warning("could not build a sync (%s); retrying", exc)
                    await self.send_text(dumps({
                        "type": ERROR, "code": ERR_UNAVAILABLE,
                        "message": "the database is not answering; the sync follows when it does",
                    }))
                elif now - first_failure > SYNC_RETRY_SECONDS:
                    await self.close_with(CLOSE_TRY_LATER, "the database is not answering; try again shortly")
                    return None
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        return None

    def _detach(self):
        """Leave the live view this socket holds, if any."""
        live, self.live = self.live, None
        if live is not None and self.hub is not None:
            self.hub.views.detach(self, live)

    def _unsubscribed(self):
        self.state = "new"
        self.buffer = []
        if self.hub is not None:
            self.hub.raw.discard(self)

    def view_lost(self):
        """Called by the hub when it drops the windows (it missed events): this socket gets no
        more ranges, and a ping with the head tells the client to subscribe again."""
        self.live = None
        self._unsubscribed()
        asyncio.get_running_loop().call_soon(self._tell_behind)

    def _tell_behind(self):
        if self.hub is not None and not self.closed:
            self.hub.heartbeat.ping_now(self)

    def ping_position(self):
        """The number a ping tells this socket: what its view has sent, else the head."""
        live = self.live
        return live.sent_seq if live is not None else None

    def deliver(self, text, events):
        """Called by the hub with each fan-out: an encoded frame and its Events."""
        if self.state == "live":
            self._put(text)
        elif self.state == "syncing":
            if len(self.buffer) < BUFFER_LIMIT:
                self.buffer.extend(events)
            else:  # without a view the client finds the hole and resubscribes; a view reads again
                self.buffer_full = True

    def send_range(self, text):
        """Called by the socket's live view with each range."""
        self._put(text)

    async def send_text(self, text):
        """Hand a frame to the server without waiting for a slow reader (realtime/outbox.py)."""
        self._put(text)

    def _put(self, text):
        """Send a frame, unless what this socket (or its user) holds unsent would pass its
        bound with it: then the socket is closed with 4008 and the frame dropped."""
        if self.closed:
            return
        size = len(text)
        held = self.pending() + size
        if held > settings.REALTIME_MAX_OUTBOX_BYTES:
            return self._outbox_full(held)
        if held > USER_CHECK_BYTES and self.hub is not None:
            total = self.hub.pending_of(self.user_id) + size
            if total > settings.REALTIME_MAX_USER_OUTBOX_BYTES:
                return self._outbox_full(total, user=True)
        self._outbox().put({"type": "websocket.send", "text": text}, size)

    def pending(self):
        """Bytes this socket holds that its reader has not taken: the frames queued here, the
        send in flight, and (on daphne) what its transport buffers."""
        outbox = self.__dict__.get("outbox")
        held = outbox.queued_bytes + outbox.inflight_bytes if outbox is not None else 0
        buffered = self.scope.get("extensions", {}).get(BUFFERED) if self.scope else None
        return held + (buffered() if buffered is not None else 0)

    def _outbox(self):
        outbox = self.__dict__.get("outbox")
        if outbox is None:
            outbox = self.outbox = Outbox(self.base_send, self._send_failed)
        return outbox

    def _send_failed(self, exc):
        # The frame was refused: never leave the socket half-alive.
        log.warning("send failed (%s); closing with 1011", exc)
        asyncio.ensure_future(self.close_with(CLOSE_SERVER_ERROR))

    def _outbox_full(self, held, user=False):
        limit = "REALTIME_MAX_USER_OUTBOX_BYTES" if user else "REALTIME_MAX_OUTBOX_BYTES"
        log.warning("%s unsent bytes for %s (%s): the client is not reading; closing with 4008",
                    held, f"user {self.username}" if user else "this socket", limit)
        metrics.OUTBOX_CLOSES.labels(bound="user" if user else "socket").inc()
        asyncio.ensure_future(self.close_with(CLOSE_HEARTBEAT_TIMEOUT, "the dashboard is not reading fast enough"))

    async def _send_closing(self, code, reason, retry_within=None):
        """Say why, just before a close (daphne drops a close frame's reason text), and for a
        restart within how many seconds to come back (realtime/hub.py `restart_spread`)."""
        if reason:
            frame = {"type": ERROR, "code": ERR_CLOSING, "close": code, "message": reason}
            if retry_within is not None:
                frame["retry_within"] = retry_within
            try:
                await self.base_send({"type": "websocket.send", "text": dumps(frame)})
            except Exception as exc:
                log.debug("could not send the closing reason: %s", exc)

    async def close_with(self, code, reason=None, retry_within=None):
        """Close the socket with `code` (and say why, when `reason` is given); leave the hub at once."""
        if self.closed:
            return
        metrics.CLOSED.labels(code=str(code)).inc()
        self.closed = True
        self._leave(f"server closed code={code}")
        outbox = self.__dict__.get("outbox")
        if outbox is not None:
            outbox.discard()
        # Started eagerly too: a close to a reader that stopped reading must not hold up the
        # heartbeat loop that closes it.
        try:
            task = start_eagerly(self._close_now(code, reason, retry_within))
        except Exception as exc:  # the connection is already gone
            log.debug("close failed: %s", exc)
        else:
            if task is not None:
                task.add_done_callback(_log_close_failure)

    async def _close_now(self, code, reason, retry_within=None):
        await self._send_closing(code, reason, retry_within)
        await self.close(code, reason)


def compose_others(seed, buffered, seq):
    """({key: [encoded rows]}, {key: [deleted ids]}) of the entities beside the window at
    number `seq`: what the seed read at seed.head, plus the buffered events after it."""
    windowed = registry.windowed()
    rows = {key: dict(found) for key, found in seed.others.items()}
    deleted = {key: dict.fromkeys(ids) for key, ids in seed.deleted.items()}
    for event in buffered:
        if event.seq <= seed.head or event.seq > seq or event.entity == windowed.name:
            continue
        key = event.entity + "s"
        if event.deleted:
            rows.setdefault(key, {}).pop(event.id, None)
            if not seed.reset:
                deleted.setdefault(key, {})[event.id] = None
        else:
            rows.setdefault(key, {})[event.id] = event.data
            deleted.get(key, {}).pop(event.id, None)
    return ({key: [dumps(row) for row in found.values()] for key, found in rows.items()},
            {key: list(ids) for key, ids in deleted.items()})

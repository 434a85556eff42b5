"""The WebSocket consumer for /ws/dashboard/ (protocol: docs/protocol.md).

A consumer authenticates, registers with its process's hub, answers `subscribe` with a
`sync` and then forwards the hub's events. Per-socket state is a handful of attributes; the
hub does the heartbeat and the fan-out for all sockets at once.
"""
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from . import metrics
from .auth import authenticate
from .hub import encode, get_hub
from .protocol import (
    CLIENT_TYPES, CLOSE_FORBIDDEN, CLOSE_SERVER_ERROR, CLOSE_SERVICE_RESTART, CLOSE_NOT_SIGNED_IN, CLOSE_PROTOCOL_VIOLATION,
    CLOSE_RATE_LIMITED, CLOSE_TOO_LARGE, ERR_BAD_FIELD, ERR_BAD_JSON, ERR_BINARY, ERR_NOT_OBJECT,
    ERR_UNKNOWN_TYPE, ERROR, MAX_CONSECUTIVE_ERRORS, PING, PONG,
)
from .snapshot import build_sync

log = logging.getLogger("realtime.consumer")

# Each socket is a member of its hub, not of a layer group: no per-socket layer channel.
NO_LAYER = "no-per-socket-channel-layer"


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


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = NO_LAYER

    # Sync state: "new" (no subscribe yet), "syncing" (events are buffered), "live".
    state = "new"
    ping_id = None
    pong_deadline = 0.0
    next_ping_at = 0.0
    hub = None
    closed = False

    async def __call__(self, scope, receive, send):
        """Run the connection; leave the hub on every way out.

        Channels does not call disconnect() when a handler raises or the server cancels the
        task at shutdown, so cleanup lives here, around the whole connection."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._leave("ended")

    async def connect(self):
        """Called on the WebSocket handshake. Refusals are accepted and then closed with a
        code: a browser cannot see an HTTP refusal and would retry forever."""
        user, may_watch = await database_sync_to_async(authenticate)(self.scope)
        self.scope["user"] = user
        if not user.is_authenticated:
            return await self._refuse(CLOSE_NOT_SIGNED_IN)
        if not may_watch:
            return await self._refuse(CLOSE_FORBIDDEN)
        hub = get_hub()
        if hub.closing:  # this process is shutting down: come back to another one
            return await self._refuse(CLOSE_SERVICE_RESTART)
        self.buffer = []
        self.errors = 0
        self.bucket = TokenBucket(settings.REALTIME_RATE_LIMIT, settings.REALTIME_RATE_BURST)
        self.hub = hub
        await self.hub.join(self)  # before accept: the socket is a member once the client sees it
        await self.accept()
        metrics.CONNECTIONS.inc()
        log.info("connect user=%s channel=%s", user.get_username(), id(self))

    async def _refuse(self, code):
        metrics.REFUSED.labels(code=str(code)).inc()
        log.info("refused code=%s", code)
        await self.accept()
        await self.close(code)

    async def disconnect(self, code):
        """Called when the client goes away."""
        self._leave(f"client closed code={code}")

    def _leave(self, reason):
        if self.hub is not None:
            self.hub.leave(self)
            self.hub = None
            log.info("disconnect channel=%s reason=%s", id(self), reason)

    # Incoming frames -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        """Called with every frame; checks size, rate and shape before dispatching."""
        if self.hub is None:
            return
        if not self.bucket.take():
            return await self.close_with(CLOSE_RATE_LIMITED)
        if bytes_data is not None:
            return await self._reject(ERR_BINARY, "binary frames are not supported; send JSON text")
        if len(text_data) > settings.REALTIME_MAX_FRAME_BYTES:
            return await self.close_with(CLOSE_TOO_LARGE)
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
            self.hub.pong(self, content["id"])
        elif kind == PING:
            ping_id = content.get("id")
            if isinstance(ping_id, bool) or not isinstance(ping_id, (int, str, type(None))):
                return await self._reject(ERR_BAD_FIELD, "ping.id must be an integer or a string")
            await self.send_text(json.dumps({"type": PONG, "id": ping_id}))
        else:
            since, epoch = content.get("since"), content.get("epoch")
            if since is not None and (not _is_int(since) or since < 0):
                return await self._reject(ERR_BAD_FIELD, "subscribe.since must be null or a non-negative integer")
            if epoch is not None and not isinstance(epoch, str):
                return await self._reject(ERR_BAD_FIELD, "subscribe.epoch must be null or a string")
            await self.subscribe(since, epoch)
        self.errors = 0

    async def _reject(self, code, message):
        metrics.BAD_FRAMES.labels(code=code).inc()
        self.errors += 1
        if self.errors >= MAX_CONSECUTIVE_ERRORS:
            return await self.close_with(CLOSE_PROTOCOL_VIOLATION)
        await self.send_text(json.dumps({"type": ERROR, "code": code, "message": message}))

    # Sync and events -----------------------------------------------------------------------

    async def subscribe(self, since, epoch):
        """Answer with a sync, then switch to live events without losing or reordering any.

        Events the hub fans out while the database is read are buffered; after the sync is
        sent, those newer than its `seq` follow, then the socket goes live."""
        self.state = "syncing"
        self.buffer = []
        texts, head, reset = await database_sync_to_async(build_sync)(since, epoch)
        if self.hub is None:
            return
        metrics.SYNCS.labels(kind="reset" if reset else "delta").inc()
        log.info("resync channel=%s since=%s head=%s reset=%s", id(self), since, head, reset)
        for text in texts:
            await self.send_text(text)
        while self.buffer:
            events, self.buffer = [e for e in self.buffer if e["seq"] > head], []
            if events:
                head = events[-1]["seq"]
                await self.send_text(encode(events))
        self.state = "live"  # no await between the empty check and this line

    async def deliver(self, text, events):
        """Called by the hub with each fan-out: the encoded frame and its events."""
        if self.state == "live":
            await self.send_text(text)
        elif self.state == "syncing":
            if len(self.buffer) < 100_000:
                self.buffer.extend(events)
            # Past that the gap is left open: the client notices it and resubscribes.

    async def send_text(self, text):
        if not self.closed:
            try:
                await self.base_send({"type": "websocket.send", "text": text})
            except Exception as exc:  # the frame was refused: never leave the socket half-alive
                log.warning("send failed (%s); closing with 1011", exc)
                await self.close_with(CLOSE_SERVER_ERROR)

    async def close_with(self, code):
        """Close the socket with `code` and leave the hub at once."""
        if self.closed:
            return
        metrics.CLOSED.labels(code=str(code)).inc()
        self.closed = True
        self._leave(f"server closed code={code}")
        try:
            await self.close(code)
        except Exception as exc:  # the connection is already gone
            log.debug("close failed: %s", exc)

"""The load client: thousands of dashboards in one asyncio process.

It speaks RFC 6455 directly on `asyncio.Protocol` instead of through the `websockets`
library, because on this 2-core machine the client has one core and must stay much cheaper
per frame than the server it measures (a `websockets` client costs about as much per
received frame as the raw reference server does per sent frame, which would hide the
difference being measured). Each received chunk is timestamped with time.monotonic() on
arrival, before any parsing; servers take their commit stamps with the same clock.

Two modes:
- "stamp": pure receive-and-timestamp. Keeps (arrival time, raw frame) of every event frame,
  answers pings; latencies are computed afterwards against the writer's commit stamps.
- "apply": applies the stream by docs/protocol.md's client rules (realtime/client.py, which
  the tests' client and check_stream share): syncs (whole or in parts), events and ranges,
  duplicates ignored, a gap or a ping ahead of `last` resubscribes with `since`; it answers
  pings and (optionally) reconnects like the browser client: 1012 -> 0.5 s + U(0, 5 s);
  other closes -> full-jitter backoff 0.25 s .. min(30 s, 1 s * 2^attempt); 4500-4999 and
  1009 -> stop.
  Identical frames are JSON-decoded once per fleet (every socket gets the same pre-encoded
  frame), then applied per client.
"""
import asyncio
import base64
import json
import math
import os
import random
import time
from array import array

from realtime.client import StreamState

monotonic = time.monotonic
EVENT_MARKS = (b'"type":"event"', b'"type": "event"')
RANGE_MARK = b'"from":'


def range_of(payload):
    """(from, to) of a view's range frame, read without decoding the frame, or None."""
    at = payload.find(RANGE_MARK, 0, 40)
    if at < 0:
        return None
    start = at + len(RANGE_MARK)
    comma = payload.index(b",", start)
    to_at = payload.index(b'"to":', comma) + 5
    return int(payload[start:comma]), int(payload[to_at:payload.index(b",", to_at)])


def _xor(data, mask):
    n = len(data)
    if not n:
        return b""
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(m, "little")).to_bytes(n, "little")


def client_frame(opcode, payload):
    """A masked client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return header + mask + _xor(payload, mask)


class WSProtocol(asyncio.Protocol):
    """One client WebSocket: handshake, frame parsing, pongs, close handshake."""

    def __init__(self, owner, request):
        self.owner, self.request = owner, request
        self.transport = None
        self.buf = b""
        self.open = False
        self.done = False
        self.frag = None
        self.handshake = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        t = monotonic()
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[:end].split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                if not self.handshake.done():
                    self.handshake.set_exception(ConnectionError(f"handshake refused: {status[:80]!r}"))
                self.transport.close()
                return
            self.open = True
            self.handshake.set_result(True)
            data = data[end + 4:]
        pos, n = 0, len(data)
        while n - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length, head = b1 & 127, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = (data[pos + 2] << 8) | data[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            masked = b1 & 128
            end = pos + head + (4 if masked else 0) + length
            if end > n:
                break
            payload = data[end - length:end]
            if masked:
                payload = _xor(payload, data[pos + head:pos + head + 4])
            pos = end
            self.frame(b0, payload, t)
            if self.done:
                return
        if pos < n:
            self.buf = data[pos:]

    def frame(self, b0, payload, t):
        opcode, fin = b0 & 15, b0 & 128
        if opcode == 0:
            self.frag[1].append(payload)
            if fin:
                opcode, payload = self.frag[0], b"".join(self.frag[1])
                self.frag = None
            else:
                return
        elif opcode in (1, 2) and not fin:
            self.frag = (opcode, [payload])
            return
        if opcode == 1 or opcode == 2:
            self.owner.on_text(payload, t)
        elif opcode == 9:
            self.transport.write(client_frame(10, payload))
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.done:
                self.transport.write(client_frame(8, payload[:2]))
                self.transport.close()
                self._finish(code)

    def send_text(self, text):
        if self.transport is not None and not self.done and not self.transport.is_closing():
            self.transport.write(client_frame(1, text.encode()))

    def close(self, code=1000):
        if self.transport is not None and not self.done:
            self.transport.write(client_frame(8, code.to_bytes(2, "big")))
            self.transport.close()
            self._finish(code, ours=True)

    def connection_lost(self, exc):
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        self._finish(1006)

    def _finish(self, code, ours=False):
        if not self.done:
            self.done = True
            self.owner.on_close(self, code, ours)


class Client(StreamState):
    """One dashboard: the stream's client rules (realtime/client.py) on a WSProtocol, with the
    browser's reconnect policy and the benchmarks' bookkeeping (arrival times, counts)."""

    def __init__(self, fleet, index):
        super().__init__(view=fleet.view)
        self.fleet, self.index = fleet, index
        self.proto = None
        self.bytes = 0
        self.synced = False
        self.stopped = False
        self.attempt = 0
        self.frames = []  # stamp mode: (t, payload)
        self.recv = None  # apply mode with tracking: arrival time per seq
        self.connects = self.pings = 0
        self.close_codes = []
        self.connect_errors = 0
        self.resynced_at = None  # first sync after `fleet.mark`
        self.closed_at = None

    # The connection ------------------------------------------------------------------------

    async def connect(self, timeout=15.0):
        loop = asyncio.get_running_loop()
        fleet = self.fleet
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {fleet.path} HTTP/1.1\r\nHost: 127.0.0.1:{fleet.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {'https' if fleet.ssl else 'http'}://127.0.0.1:{fleet.port}\r\nCookie: {fleet.cookie}\r\n\r\n"
        ).encode()
        proto = WSProtocol(self, request)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: proto, "127.0.0.1", fleet.port, ssl=fleet.ssl), timeout)
            await asyncio.wait_for(asyncio.shield(proto.handshake), timeout)
        except BaseException:
            if proto.transport is not None:
                proto.done = True
                proto.transport.abort()
            raise
        self.proto = proto
        self.connects += 1
        self.synced = False
        self.subscribe()

    def subscribe(self):
        self.proto.send_text(json.dumps(self.subscribe_frame()))

    def close(self):
        self.stopped = True
        if self.proto is not None:
            self.proto.close(1000)

    def on_close(self, proto, code, ours):
        if proto is not self.proto:
            return
        self.proto = None
        self.connection_lost()
        self.synced = False
        self.close_codes.append(code)
        if self.closed_at is None and self.fleet.mark is not None:
            self.closed_at = monotonic()
        self.fleet.open_count -= 1
        if ours or self.stopped or not self.fleet.reconnect:
            return
        if 4500 <= code < 5000 or code == 1009:
            self.stopped = True
            return
        self.schedule_reconnect(code)

    def schedule_reconnect(self, code):
        if code == 1012:
            delay = 0.5 + random.random() * 5.0
        else:
            ceiling = min(30.0, 1.0 * 2 ** min(self.attempt, 16))
            delay = 0.25 + random.random() * (ceiling - 0.25)
        self.attempt += 1
        asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._reconnect()))

    async def _reconnect(self):
        if self.stopped:
            return
        try:
            await self.connect()
            self.fleet.open_count += 1
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            self.connect_errors += 1
            kind = type(exc).__name__ if not str(exc).startswith("handshake refused") else str(exc)[:40]
            self.fleet.error_kinds[kind] = self.fleet.error_kinds.get(kind, 0) + 1
            self.schedule_reconnect(1006)

    # Frames -----------------------------------------------------------------------------

    def on_text(self, payload, t):
        fleet = self.fleet
        self.bytes += len(payload)
        if fleet.mode == "stamp":
            head = payload[:24]
            if b'"ping"' in head:
                self._pong(json.loads(payload))
            elif b'"sync"' in head:
                frame = json.loads(payload)
                self.epoch, self.last, self.synced, self.subscribing = frame["epoch"], frame["seq"], True, False
                fleet.synced_count += 1
            else:
                self.frames.append((t, payload))
                covered = range_of(payload)  # a view's range stands for every change it covers
                fleet.events_received += (covered[1] - covered[0] + 1 if covered else
                                          payload.count(EVENT_MARKS[0]) + payload.count(EVENT_MARKS[1]))
            return
        frame = fleet.decode(payload)
        kind = frame["type"]
        if kind == "sync":
            self._take_sync(frame, t)
            return
        if kind == "ping":
            self._pong(frame)
        elif kind == "error":
            fleet.errors.append(frame)
        before = self.last
        if self.apply(frame):
            self.subscribe()
        if fleet.track_base is not None and self.last != before:
            self._arrived(before + 1, t)

    def _pong(self, frame):
        self.pings += 1
        if self.proto is not None:
            self.proto.send_text(json.dumps({"type": "pong", "id": frame["id"]}))

    def _take_sync(self, frame, t):
        before, syncs = self.last, self.syncs
        self.apply(frame)
        if self.syncs == syncs:  # a part: the sync is applied with its last part
            return
        self.attempt = 0
        if not self.synced:
            self.synced = True
            self.fleet.synced_count += 1
        if self.fleet.mark is not None and self.resynced_at is None:
            self.resynced_at = t
        if before is not None and self.fleet.track_base is not None:
            # Changes recovered through a sync count as delivered when the sync arrived.
            recv, base = self._recv(), self.fleet.track_base
            for i in range(max(before + 1 - base, 0), min(self.last - base + 1, len(recv))):
                if math.isnan(recv[i]):
                    recv[i] = t

    def _arrived(self, first, t):
        """Arrival time `t` for the changes numbered `first`..`last` (apply mode, tracked)."""
        recv = self.recv if self.recv is not None else self._recv()
        base = self.fleet.track_base
        if first == self.last:  # one change: the common case
            if 0 <= first - base < len(recv):
                recv[first - base] = t
            return
        for i in range(max(first - base, 0), min(self.last - base + 1, len(recv))):
            recv[i] = t

    def _recv(self):
        if self.recv is None:
            self.recv = array("d", [math.nan]) * self.fleet.track_size
        return self.recv

    def versions(self):
        return ({str(k): r["version"] for k, r in self.tasks.items()},
                {str(k): r["version"] for k, r in self.agents.items()})


class Fleet:
    """Many clients of one server."""

    def __init__(self, port, cookie="", mode="stamp", reconnect=False, path="/ws/dashboard/", view=None, ssl=None):
        self.port, self.cookie, self.mode, self.reconnect, self.path = port, cookie, mode, reconnect, path
        self.ssl = ssl  # an ssl.SSLContext: wss:// (through the shipped nginx site)
        self.view = view  # protocol v2: every client subscribes to this view
        self.clients = []
        self.events_received = 0
        self.synced_count = 0
        self.open_count = 0
        self.errors = []
        self.connect_failures = 0
        self.error_kinds = {}
        self.mark = None
        self.track_base = None
        self.track_size = 0
        self._cache = {}

    def decode(self, payload):
        frame = self._cache.get(payload)
        if frame is None:
            frame = json.loads(payload)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[payload] = frame
        return frame

    def track(self, base_seq, size):
        """Record arrival times of seq base_seq .. base_seq + size - 1 (apply mode)."""
        self.track_base, self.track_size = base_seq, size

    async def connect(self, n, concurrency=100, retries=3):
        """Open n more clients, `concurrency` handshakes at a time; wait for their syncs."""
        semaphore = asyncio.Semaphore(concurrency)
        start = len(self.clients)
        new = [Client(self, start + i) for i in range(n)]
        self.clients.extend(new)

        async def one(client):
            async with semaphore:
                for attempt in range(retries):
                    try:
                        await client.connect()
                        self.open_count += 1
                        return
                    except (OSError, asyncio.TimeoutError, ConnectionError):
                        await asyncio.sleep(0.2 * (attempt + 1))
                self.connect_failures += 1

        t0 = monotonic()
        await asyncio.gather(*(one(c) for c in new))
        await self.wait(lambda: all(c.synced or c.proto is None for c in new), 60)
        return monotonic() - t0

    async def wait_progress(self, count, target, stall=5.0, timeout=120.0, step=0.01):
        """Wait until count() >= target, or until it has not moved for `stall` seconds."""
        end = monotonic() + timeout
        last, moved = count(), monotonic()
        while count() < target:
            now = monotonic()
            if now > end or now - moved > stall:
                return False
            await asyncio.sleep(step)
            if count() != last:
                last, moved = count(), monotonic()
        return True

    async def reach(self, seq, timeout=30.0, step=0.01):
        """Wait until every client has applied the changes up to `seq` (apply mode)."""
        return await self.wait(lambda: all(c.last is not None and c.last >= seq for c in self.clients), timeout, step)

    def synced_clients(self):
        return sum(1 for c in self.clients if c.synced)

    async def wait(self, predicate, timeout, step=0.01):
        end = monotonic() + timeout
        while not predicate():
            if monotonic() > end:
                return False
            await asyncio.sleep(step)
        return True

    async def close(self, clients=None):
        for client in clients if clients is not None else self.clients:
            client.close()
        await asyncio.sleep(0.2)

    # Results ---------------------------------------------------------------------------

    def stamp_latencies(self, stamps):
        """Stamp mode: arrival minus commit time for every delivered event of `stamps`."""
        import numpy as np

        commit = {seq: t for seq, t in stamps}
        values, delivered = [], 0
        for client in self.clients:
            for t, payload in client.frames:
                covered = range_of(payload)
                if covered is not None:  # a range delivers every change it covers
                    seqs = range(covered[0], covered[1] + 1)
                else:
                    frame = self.decode(payload)
                    seqs = [e.get("seq") for e in (frame["items"] if frame.get("type") == "events" else [frame])]
                for seq in seqs:
                    c = commit.get(seq)
                    if c is not None:
                        values.append(t - c)
                        delivered += 1
        expected = len(commit) * sum(1 for c in self.clients if c.synced)
        return np.asarray(values), expected - delivered

    def clear_frames(self):
        for client in self.clients:
            client.frames = []
        self.events_received = 0

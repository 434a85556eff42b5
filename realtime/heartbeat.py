"""The heartbeat of every socket of a process: pings on an interval, pongs, dead sockets closed.

Every socket gets a `ping` every REALTIME_HEARTBEAT_INTERVAL seconds and is closed with 4008
if the `pong` is later than REALTIME_HEARTBEAT_TIMEOUT. This also bounds how much a stuck
reader can make the server buffer. One loop serves every socket; the per-socket state
lives here, not on the consumer. Nothing here touches the database, so a stalled database
never makes a healthy socket miss its deadline.
"""
import asyncio
import itertools
import logging

from django.conf import settings

from . import metrics
from .frames import dumps
from .protocol import CLOSE_HEARTBEAT_TIMEOUT, PING

log = logging.getLogger("realtime.heartbeat")


class Beat:
    """One socket's heartbeat: the outstanding ping (if any), its deadline, the next ping."""

    __slots__ = ("ping_id", "deadline", "next_at")

    def __init__(self, next_at):
        self.ping_id, self.deadline, self.next_at = None, 0.0, next_at


class Heartbeat:
    def __init__(self, hub):
        self.hub = hub
        self.beats = {}  # consumer -> Beat
        self._ids = itertools.count(1)

    def add(self, consumer):
        now = asyncio.get_running_loop().time()
        self.beats[consumer] = Beat(now + settings.REALTIME_HEARTBEAT_INTERVAL)

    def remove(self, consumer):
        self.beats.pop(consumer, None)

    def pong(self, consumer, ping_id):
        """A pong arrived; it counts only if it answers the outstanding ping."""
        beat = self.beats.get(consumer)
        if beat is not None and beat.ping_id is not None and ping_id == beat.ping_id:
            beat.ping_id = None
            return True
        return False

    async def run(self):
        tick = min(1.0, settings.REALTIME_HEARTBEAT_INTERVAL / 4, settings.REALTIME_HEARTBEAT_TIMEOUT / 4)
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + tick
            await asyncio.sleep(tick)
            try:
                now = loop.time()
                if now - expected > tick:  # this process stalled: the pongs could not be read
                    self.excuse_stall(now - expected)
                await self.round(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat round failed")

    def excuse_stall(self, seconds):
        """Move every pong deadline back by a stall of the process, so clients are not closed
        for a delay that was the server's own."""
        log.warning("event loop stalled for %.1f s; pong deadlines extended", seconds)
        for beat in self.beats.values():
            if beat.ping_id is not None:
                beat.deadline += seconds

    async def round(self, now):
        """Close sockets whose pong is late, ping those that are due."""
        for consumer, beat in tuple(self.beats.items()):
            if beat.ping_id is not None:
                if now > beat.deadline:
                    metrics.HEARTBEAT_TIMEOUTS.inc()
                    await consumer.close_with(CLOSE_HEARTBEAT_TIMEOUT)
            elif now >= beat.next_at:
                await self.ping(consumer, beat, now)

    async def ping_all(self):
        """Ping every socket now (carrying the head), so a client behind it resubscribes."""
        now = asyncio.get_running_loop().time()
        for consumer, beat in tuple(self.beats.items()):
            if beat.ping_id is None:
                await self.ping(consumer, beat, now)

    async def ping(self, consumer, beat, now, seq=None):
        beat.ping_id = next(self._ids)
        beat.deadline = now + settings.REALTIME_HEARTBEAT_TIMEOUT
        beat.next_at = now + settings.REALTIME_HEARTBEAT_INTERVAL
        metrics.PING_FRAMES_SENT.inc()
        if seq is None:
            # A socket whose view waits for rows it lacks holds an older number: the head
            # would send it to subscribe again for nothing (realtime/live.py).
            seq = consumer.ping_position() or self.hub.known_head
        await consumer.send_text(dumps({"type": PING, "id": beat.ping_id, "seq": seq, "epoch": self.hub.epoch}))

    def ping_now(self, consumer):
        """Ping one socket at once with the newest number this process has released: it lost
        its view (realtime/live.py `drop_all`) and must subscribe again."""
        beat = self.beats.get(consumer)
        if beat is None:
            return
        loop = asyncio.get_running_loop()
        head = max(self.hub.known_head, self.hub.last)
        if beat.ping_id is None:
            asyncio.ensure_future(self.ping(consumer, beat, loop.time(), seq=head))
        else:  # a ping is out already: send the head without moving its deadline
            consumer._put(dumps({"type": PING, "id": beat.ping_id, "seq": head, "epoch": self.hub.epoch}))

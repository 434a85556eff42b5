"""The heartbeat of every socket of a process: pings on an interval, pongs, dead sockets closed.

Every socket is pinged every REALTIME_HEARTBEAT_INTERVAL seconds and closed with 4008 if the
`pong` is later than REALTIME_HEARTBEAT_TIMEOUT. This also bounds how much a stuck reader can
make the server buffer. One loop serves every socket; the per-socket state lives here, not on
the consumer. Nothing here touches the database, so a stalled database never makes a healthy
socket miss its deadline.

What an idle socket costs is what this loop does for it, so (bench/findings.md, idle sockets):
- a tick's pings share one id and are encoded once for every socket at the same number;
- a socket that sent anything within the interval (the browser pings to measure its round
  trip, and pongs) has shown it is alive: its routine ping is skipped, its next deadline
  moves. Pings sent out of turn (the head moved past what the socket has, its view was
  dropped) always go.
A pong is matched by its id; the consumer reads the usual pong without the general JSON
path (realtime/consumers.py `PONG_FRAME`).
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
    """One socket's heartbeat: the outstanding ping (if any), its deadline, the next ping, and
    when the socket last sent anything."""

    __slots__ = ("ping_id", "deadline", "next_at", "heard_at")

    def __init__(self, next_at):
        self.ping_id, self.deadline, self.next_at, self.heard_at = None, 0.0, next_at, float("-inf")


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

    def heard(self, consumer, now):
        """The socket sent a frame: it is alive whatever its pings say."""
        beat = self.beats.get(consumer)
        if beat is not None:
            beat.heard_at = now

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
                self.round(now)
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

    def round(self, now):
        """Close sockets whose pong is late, ping those that are due (one id, one encoding
        per number for the whole round)."""
        interval = settings.REALTIME_HEARTBEAT_INTERVAL
        texts = {}
        round_id = None
        for consumer, beat in tuple(self.beats.items()):
            if beat.ping_id is not None:
                if now > beat.deadline:
                    metrics.HEARTBEAT_TIMEOUTS.inc()
                    asyncio.ensure_future(consumer.close_with(CLOSE_HEARTBEAT_TIMEOUT))
            elif now >= beat.next_at:
                if now - beat.heard_at < interval:
                    beat.next_at = beat.heard_at + interval  # it spoke lately: no need to ask
                    metrics.PINGS_SKIPPED.inc()
                    continue
                if round_id is None:
                    round_id = next(self._ids)
                seq = consumer.ping_position() or self.hub.known_head
                text = texts.get(seq)
                if text is None:
                    text = texts[seq] = self._text(round_id, seq)
                self._arm(beat, round_id, now)
                consumer._put(text)

    def _text(self, ping_id, seq):
        return dumps({"type": PING, "id": ping_id, "seq": seq, "epoch": self.hub.epoch})

    def _arm(self, beat, ping_id, now):
        beat.ping_id = ping_id
        beat.deadline = now + settings.REALTIME_HEARTBEAT_TIMEOUT
        beat.next_at = now + settings.REALTIME_HEARTBEAT_INTERVAL
        metrics.PING_FRAMES_SENT.inc()

    async def ping_all(self):
        """Ping every socket now (carrying the head), so a client behind it resubscribes."""
        now = asyncio.get_running_loop().time()
        ping_id, texts = next(self._ids), {}
        for consumer, beat in tuple(self.beats.items()):
            if beat.ping_id is None:
                seq = consumer.ping_position() or self.hub.known_head
                text = texts.get(seq) or texts.setdefault(seq, self._text(ping_id, seq))
                self._arm(beat, ping_id, now)
                consumer._put(text)

    def ping_now(self, consumer):
        """Ping one socket at once with the newest number this process has released: it lost
        its view (realtime/live.py `drop_all`) and must subscribe again."""
        beat = self.beats.get(consumer)
        if beat is None:
            return
        head = max(self.hub.known_head, self.hub.last)
        if beat.ping_id is None:
            ping_id = next(self._ids)
            self._arm(beat, ping_id, asyncio.get_running_loop().time())
        else:  # a ping is out already: send the head with its id, without moving its deadline
            ping_id = beat.ping_id
        consumer._put(self._text(ping_id, head))

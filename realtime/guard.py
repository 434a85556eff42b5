"""The hub's access guard: sockets whose access ended are closed (rules: realtime/access.py).

Three ways an ended access is noticed: a pushed change (`handle`, from the signal receivers
in realtime/revocation.py on any process), the session's expiry time passing (checked every
second, no database), and the full re-check of every socket every
REALTIME_AUTH_RECHECK_INTERVAL seconds. A re-check that cannot reach the database closes
nobody (a stalled database is not the client's fault), except a session already past its
known expiry time.
"""
import asyncio
import logging
import time

from django.conf import settings

from . import dbwork, metrics
from .access import check_sessions
from .protocol import CLOSE_BY_OPERATOR, CLOSE_NOT_SIGNED_IN

log = logging.getLogger("realtime.access")


class Guard:
    def __init__(self, hub):
        self.hub = hub
        self.heard = 0  # pushed access changes handled so far (a socket's first subscribe reads it)

    async def run(self):
        loop = asyncio.get_running_loop()
        next_full = loop.time() + settings.REALTIME_AUTH_RECHECK_INTERVAL
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.close_expired()
                if loop.time() >= next_full:
                    next_full = loop.time() + settings.REALTIME_AUTH_RECHECK_INTERVAL
                    await self.recheck(tuple(self.hub.members))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("access re-check failed")

    async def close_expired(self):
        now = time.time()
        expired = [c for c in self.hub.members if c.expires_at is not None and c.expires_at <= now]
        if expired:  # the session may have been extended since the last check: ask once more
            await self.recheck(expired, close_if_unknown=True)

    async def recheck(self, consumers, close_if_unknown=False):
        """Check `consumers` against the database; close those whose access ended."""
        consumers = [c for c in consumers if c in self.hub.members]
        if not consumers:
            return
        try:
            verdicts = await dbwork.run("access", check_sessions, {c.session_key for c in consumers})
        except Exception as exc:
            log.warning("could not re-check access (%s); sockets stay open until it answers", exc)
            if close_if_unknown:
                for consumer in consumers:
                    await self.end(consumer, CLOSE_NOT_SIGNED_IN, "the session expired")
            return
        for consumer in consumers:
            verdict = verdicts.get(consumer.session_key)
            if verdict is not None and verdict.code is None and str(verdict.user_id) == str(consumer.user_id):
                consumer.expires_at = verdict.expires_at
            else:
                code = verdict.code if verdict is not None and verdict.code else CLOSE_NOT_SIGNED_IN
                await self.end(consumer, code, verdict.reason if verdict is not None else "the session ended")

    async def end(self, consumer, code, reason):
        if consumer not in self.hub.members:
            return
        metrics.ACCESS_ENDED.labels(reason=str(code)).inc()
        log.info("access ended user=%s code=%s reason=%s", consumer.username, code, reason)
        await consumer.close_with(code, reason)

    async def handle(self, message):
        """A pushed access change (payloads: realtime/access.py)."""
        self.heard += 1
        members = tuple(self.hub.members)
        ended = set(message.get("ended") or ())
        for consumer in members:
            if consumer.session_fingerprint in ended:
                await self.end(consumer, CLOSE_NOT_SIGNED_IN, "signed out")
        closing = {str(u) for u in message.get("close_users") or ()}
        for consumer in members:
            if str(consumer.user_id) in closing:
                await self.end(consumer, message.get("code") or CLOSE_BY_OPERATOR, "closed by an operator")
        users = {str(u) for u in message.get("users") or ()}
        if message.get("all"):
            targets = tuple(self.hub.members)
        else:
            targets = tuple(c for c in self.hub.members if str(c.user_id) in users)
        if targets:
            asyncio.ensure_future(self.recheck(targets))

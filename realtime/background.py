"""Start the process's hub from its requests of any kind, until a start succeeds.

Daphne sends no ASGI lifespan events, so there is no startup hook. The hub also runs the
periodic jobs (the agent liveness sweep, pruning), the head check and the SIGTERM handler,
and must run even when no dashboard is open, for example when only agents talk to the API.

A start fails when the database is down (the hub reads the stream head first). Then the next
request after a wait tries again: FIRST_RETRY_DELAY, doubled after each failure up to
MAX_RETRY_DELAY, so a process whose database is away does not try on every request, and one
whose database came back starts within MAX_RETRY_DELAY of its next request. A socket's
connect starts the hub itself (realtime/consumers.py) whatever the wait says."""
import asyncio
import logging
import time
import weakref

from .hub import get_hub

log = logging.getLogger("realtime.hub")

FIRST_RETRY_DELAY = 1.0  # seconds after the first failed start
MAX_RETRY_DELAY = 30.0


def _clock():
    return time.monotonic()


class _Start:
    """One event loop's start: done, running, or waiting until `retry_at` to try again."""

    __slots__ = ("done", "running", "failures", "retry_at")

    def __init__(self):
        self.done, self.running, self.failures, self.retry_at = False, False, 0, 0.0

    def due(self):
        return not self.done and not self.running and _clock() >= self.retry_at

    async def run(self):
        self.running = True
        try:
            await get_hub().ensure_started()
        except Exception as exc:
            self.failures += 1
            delay = min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** (self.failures - 1))
            self.retry_at = _clock() + delay
            log.warning("the background work could not start (%s: %s); the first request after %g s tries again "
                        "(failure %d)", type(exc).__name__, exc, delay, self.failures, exc_info=self.failures == 1)
        else:
            self.done = True
            if self.failures:
                log.warning("background work started after %d failed tries", self.failures)
            else:
                log.info("background work started")
        finally:
            self.running = False


class StartHub:
    """ASGI middleware: make sure this event loop's hub is started, then pass the call on."""

    def __init__(self, app):
        self.app = app
        self._starts = weakref.WeakKeyDictionary()  # event loop -> its _Start

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            loop = asyncio.get_running_loop()
            start = self._starts.get(loop)
            if start is None:
                start = self._starts[loop] = _Start()
            if start.due():
                start.running = True  # before the task runs: the next request must not start another
                asyncio.ensure_future(start.run())
        return await self.app(scope, receive, send)

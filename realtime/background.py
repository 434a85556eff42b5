"""Start the process's hub on its first request of any kind.

Daphne sends no ASGI lifespan events, so there is no startup hook. The hub also runs the
periodic jobs (the agent liveness sweep) and must run even when no dashboard is open, for
example when only agents talk to the API."""
import asyncio
import weakref
import logging

from .hub import get_hub

log = logging.getLogger("realtime.hub")


class StartHub:
    """ASGI middleware: make sure this event loop's hub is started, then pass the call on."""

    def __init__(self, app):
        self.app = app
        self._started_loops = weakref.WeakSet()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            loop = asyncio.get_running_loop()
            if loop not in self._started_loops:
                self._started_loops.add(loop)
                asyncio.ensure_future(self._start())
        return await self.app(scope, receive, send)

    async def _start(self):
        try:
            await get_hub().ensure_started()
        except Exception:
            log.exception("the hub could not start; it will be retried by the next socket")

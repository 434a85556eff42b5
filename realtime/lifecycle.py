"""The process's life as a server: on SIGTERM, stop listening, close every socket with 1012,
then let the server's own handler run (realtime/daphne_compat.py adjusts daphne for it)."""
import asyncio
import logging
import signal
import threading

from django.conf import settings

from .daphne_compat import allow_slow_close_handshakes, stop_listening

log = logging.getLogger("realtime.hub")

_sigterm_installed = False
draining = False  # SIGTERM arrived: /healthz says so, so a balancer and the pages look elsewhere


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
        allow_slow_close_handshakes()
        try:
            # Closing thousands of sockets takes a while on a busy process: give it at least
            # 10 s (four shutdown graces when that is longer).
            await asyncio.wait_for(hub.shutdown(), max(10.0, settings.REALTIME_SHUTDOWN_GRACE * 4))
            await asyncio.sleep(settings.REALTIME_SHUTDOWN_GRACE)  # let the close frames go out
        finally:
            chain(signum, frame)

    def on_sigterm(signum, frame):
        global draining
        draining = True
        if hub.closing:
            return chain(signum, frame)
        log.info("SIGTERM: closing %d sockets with 1012", len(hub.members))
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(close_then_chain(signum, frame)))

    signal.signal(signal.SIGTERM, on_sigterm)
    _sigterm_installed = True

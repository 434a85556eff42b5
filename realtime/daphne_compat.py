"""Adjustments to daphne, applied once when the realtime app loads (RealtimeConfig.ready).

1. Close codes. Daphne closes sockets through autobahn's `sendClose()`, which accepts only
   1000 and 3000-4999 and raises for every other code, although RFC 6455 and the IANA
   registry define 1009 (message too big), 1011 (server error) and 1012 (service restart)
   for servers to send. Without the patch the restart notice on SIGTERM is an exception.
2. Floods. Daphne parses every frame into an unbounded per-connection queue, faster than
   the application can refuse them; one flooding client could stall the whole process.
   When a connection has MAX_QUEUED_FRAMES frames waiting, it is not read any further and
   is closed with 4029 (too many messages).
3. Shutdown. The listening ports are recorded so that on SIGTERM the process stops
   accepting connections before it closes the ones it has (realtime/hub.py).
"""
import logging

log = logging.getLogger("realtime.daphne")

SERVER_CODES = frozenset({1009, 1011, 1012})
MAX_QUEUED_FRAMES = 100
CLOSE_RATE_LIMITED = 4029

listening_ports = []


def patch_daphne():
    """Apply the three adjustments; a no-op under another ASGI server or when done already."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(WebSocketProtocol, "dashboard_patched", False):
        return
    WebSocketProtocol.dashboard_patched = True
    close, on_message, listen_success = WebSocketProtocol.serverClose, WebSocketProtocol.onMessage, Server.listen_success

    def serverClose(self, code=None):
        if code in SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            close(self, code)

    def onMessage(self, payload, isBinary):
        queue = getattr(self, "application_queue", None)
        if queue is not None and queue.qsize() >= MAX_QUEUED_FRAMES:
            if not getattr(self, "flooded", False):
                self.flooded = True
                log.warning("closing a flooding client %s with 4029", self.client_addr)
                self.transport.pauseProducing()  # stop reading it: its frames cost nothing now
                self.sendCloseFrame(code=CLOSE_RATE_LIMITED, isReply=False)
            return
        on_message(self, payload, isBinary)

    def record_listen_success(self, port):
        listening_ports.append(port)
        return listen_success(self, port)

    WebSocketProtocol.serverClose = serverClose
    WebSocketProtocol.onMessage = onMessage
    Server.listen_success = record_listen_success


def stop_listening():
    """Refuse new connections (a load balancer sends them to another process)."""
    for port in listening_ports:
        try:
            port.stopListening()
        except Exception as exc:
            log.warning("could not stop listening on %s: %s", port, exc)

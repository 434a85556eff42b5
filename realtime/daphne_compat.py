"""Let daphne send the registered close codes 1009, 1011 and 1012.

Daphne closes sockets through autobahn's `sendClose()`, which accepts only 1000 and
3000-4999 and raises for every other code, although RFC 6455 and the IANA registry define
1009 (message too big), 1011 (server error) and 1012 (service restart) for servers to send.
Without this, the restart notice on SIGTERM would be an exception instead of a close frame.
"""
SERVER_CODES = frozenset({1009, 1011, 1012})


def allow_registered_close_codes():
    """Patch daphne's server-side close to send the registered codes as they are."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server: nothing to do
        return
    if getattr(WebSocketProtocol.serverClose, "allows_registered_codes", False):
        return
    original = WebSocketProtocol.serverClose

    def serverClose(self, code=None):
        if code in SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    serverClose.allows_registered_codes = True
    WebSocketProtocol.serverClose = serverClose

"""An ASGI application that answers each HTTP request and WebSocket with the client address
and scheme it sees behind dashboard_site/proxy.py, trusting DJANGO_TRUSTED_PROXIES: run by a
real server in tests/test_proxy.py, so what the server and the middleware do to a socket's
scope can be read from outside."""
import json
import os

from dashboard_site.proxy import TrustedProxyMiddleware


def _seen(scope):
    scheme = scope.get("scheme", "http" if scope["type"] == "http" else "ws")  # ASGI's defaults
    return json.dumps({"client": (scope.get("client") or [None])[0], "scheme": scheme})


async def echo(scope, receive, send):
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": _seen(scope).encode()})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _seen(scope)})
        await send({"type": "websocket.close", "code": 1000})


_trusted = [entry for entry in os.environ.get("DJANGO_TRUSTED_PROXIES", "").split(",") if entry.strip()]
application = TrustedProxyMiddleware(echo, _trusted)

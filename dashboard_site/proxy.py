"""Client address and scheme behind a reverse proxy, believed only from trusted proxies.

`X-Forwarded-For` and `X-Forwarded-Proto` are plain request headers: anyone who reaches a
server process directly can send them. So they are read only when the TCP peer is listed in
DJANGO_TRUSTED_PROXIES (addresses or networks, e.g. `127.0.0.1` for nginx on the same host).
Then the client address is found by walking `X-Forwarded-For` from the right: each proxy
appends the address it saw, so the rightmost entry was written by the peer, and an entry is
believed only while everything to its right is a trusted proxy. The first entry that is not
a trusted proxy is the client; entries to its left are the client's own claims. When every
entry is a trusted proxy, the rightmost one is taken (the address the peer saw, which no
client chose); an entry that is not an address ends the walk. The scheme is what the nearest
proxy said (`https` makes `wss` for a WebSocket). Everything after this sees the result in
the ASGI scope, so REMOTE_ADDR, the sign-in lockout's address, `request.is_secure()`, CSRF,
secure-cookie and redirect decisions all follow one rule, under daphne and `runserver` alike.

A listed address is taken for a proxy, and a proxy's word is believed: list only the
proxies' own addresses, never a network that clients share with them (docs/security.md).

The forwarding headers stay on the request: /metrics (tasks/views.py) treats any request a
proxy relayed as not local.

Why not daphne's `--proxy-headers`: it believes the headers from every peer and takes the
leftmost `X-Forwarded-For` entry, which the client chooses; `runserver` has no such option.
uvicorn's proxy headers are on by default and believe loopback peers before this middleware
sees the request: run it with `--no-proxy-headers` (docs/deploy.md).
"""
import ipaddress

from django.core.exceptions import ImproperlyConfigured

SCHEMES = {"http": {"http": "http", "https": "https"}, "websocket": {"http": "ws", "https": "wss"}}


def parse_networks(entries, name="DJANGO_TRUSTED_PROXIES"):
    """The entries as networks; a bad one is an error naming the variable."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} entry {entry!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
            ) from None
    return tuple(networks)


def address_of(text):
    """The IP address an X-Forwarded-For entry names (a port and IPv6 brackets allowed), or
    None when it names none."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1] or [2001:db8::1]:443
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # 203.0.113.9:51234
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1


def is_trusted(address, networks):
    """Whether `address` (a string, possibly garbage from a header) is in one of `networks`."""
    ip = address_of(address) if isinstance(address, str) else None
    return ip is not None and any(ip in network for network in networks)


def header(scope, name):
    """All values of a request header, joined the way HTTP folds repeated headers."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ",".join(values) if values else None


def forwarded_client(chain, networks):
    """The client address an X-Forwarded-For chain gives, in its canonical form.

    Walking from the right, each trusted proxy vouches for the entry to its left, and the
    first entry that is not a trusted proxy is the client. When the walk finds none (every
    entry is a trusted proxy, or it reached an entry that names no address and so vouches for
    nothing), the rightmost entry: the address the peer saw, which no client chose. None when
    the rightmost entry names no address (the peer is then the client)."""
    client = None
    for hop in reversed(chain.split(",")):
        ip = address_of(hop)
        if ip is None:
            if hop.strip():
                break
            continue  # an empty item (",,"), as HTTP lists allow
        client = client or str(ip)  # the rightmost address: the answer if all are trusted
        if not any(ip in network for network in networks):
            return str(ip)
    return client


class TrustedProxyMiddleware:
    """ASGI middleware: rewrites scope["client"] and scope["scheme"] from the proxy headers
    when, and only when, the connection comes from a trusted proxy."""

    def __init__(self, app, trusted=None):
        self.app = app
        self._trusted = None if trusted is None else parse_networks(trusted)

    @property
    def trusted(self):
        if self._trusted is None:  # settings are read lazily, at the first request
            from django.conf import settings

            self._trusted = parse_networks(getattr(settings, "TRUSTED_PROXIES", []))
        return self._trusted

    async def __call__(self, scope, receive, send):
        """Called for every connection: adjusts HTTP and WebSocket scopes, passes the rest."""
        if scope["type"] in SCHEMES and self.trusted:
            scope = self.adjust(scope)
        return await self.app(scope, receive, send)

    def adjust(self, scope):
        peer = (scope.get("client") or [None])[0]
        if peer is None or not is_trusted(peer, self.trusted):
            return scope
        scope = dict(scope)
        chain = header(scope, b"x-forwarded-for")
        client = forwarded_client(chain, self.trusted) if chain else None
        if client:
            scope["client"] = [client, 0]
        proto = header(scope, b"x-forwarded-proto")
        if proto:
            nearest = proto.split(",")[-1].strip().lower()  # written by the proxy that called us
            scheme = SCHEMES[scope["type"]].get(nearest)
            if scheme:
                scope["scheme"] = scheme
        return scope

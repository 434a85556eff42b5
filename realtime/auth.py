"""Who is on the other end of a socket: the Django session's user, found in one database hop.

Channels' AuthMiddlewareStack would do the same in two hops (session, then user; the
permission check is a third) and would wrap every frame the consumer sends in its session
middleware, to save a session that a dashboard socket never changes: on the fan-out path
that wrapper cost about a quarter of the server's time per frame (bench/findings.md).
"""
from importlib import import_module

from channels.auth import get_user
from django.conf import settings
from django.http import parse_cookie

VIEW_PERMISSION = "tasks.view_task"


def session_key(scope):
    """The session cookie's value from the handshake headers, or None."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
    return None


def authenticate(scope):
    """Return (user, may_watch). Runs in a worker thread: it reads the session and the user."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key(scope))
    user = get_user.func({"session": store})  # Channels' lookup, including the session hash check
    may_watch = user.is_authenticated and user.is_active and user.has_perm(VIEW_PERMISSION)
    return user, may_watch

"""Prototypes of the changes docs/performance.md proposes, to measure them before anyone
writes them for real. Off unless asked: `python bench/run.py --patches all ...` sets
BENCH_PATCHES, and bench/bench_asgi.py (server) and bench/dbtool.py (writers) apply them by
monkeypatching at start-up. Nothing in realtime/ changes.

- headfix: the hub's head check waits for the head it saw, not for "never behind". Today
  `check_head` declares a gap when the database head is ahead of the fanned-out events at
  two polls in a row, even when every event arrived in between; under a steady stream of
  writes from other processes that is every poll, and each false gap makes every client
  resubscribe.
- publisher: in a process with no event loop (a writer, a management command), publish
  through one long-lived loop thread instead of `async_to_sync`, which makes a new loop,
  thread and Redis connection for every change.
- sqliteconn: keep SQLite connections open in the worker thread (CONN_MAX_AGE) instead of
  reopening (and re-running the PRAGMAs) for every database_sync_to_async call.
- leanauth: resolve the session user in one thread hop at connect, and do not wrap every
  `send` of the socket in Channels' session middleware (which checks the session on each
  frame).
- redistimeout: give the Redis connections a socket timeout above channels-redis's 5 s
  BZPOPMIN (redis-py 8 defaults socket_timeout to 5 s, so a quiet hub channel times out,
  the hub logs "receive failed", sleeps and rejoins, and events wait meanwhile).
- asynccommit: PostgreSQL writers commit with synchronous_commit=off (set through
  DATABASE_URL options). NOT durable as is: a crash of PostgreSQL can lose the last
  ~0.6 s of commits that clients already saw; it is only safe together with an epoch change
  whenever the database restarts (see docs/performance.md). It shows what the one-fsync-per-
  change rule costs.
- connecttimeout: daphne --websocket_connect_timeout 30 (default 5 s): under a reconnect
  storm daphne answers 403 to handshakes the application has not accepted within 5 s,
  throwing away the work already done for them.
"""
import os

# `all`: the prototypes still relevant at the measured revision. headfix was merged as written
# (commit a1586c3, Hub.check_head) and redistimeout is moot with the pub/sub layer that
# commit switched to; both stay here, by name only, to re-measure older revisions.
ALL = ("publisher", "sqliteconn", "leanauth", "connecttimeout", "asynccommit")


def enabled():
    names = set(filter(None, os.environ.get("BENCH_PATCHES", "").split(",")))
    return set(ALL) if "all" in names else names


def apply_server():
    names = enabled()
    if "redistimeout" in names:
        _redistimeout()
    if "headfix" in names:
        _headfix()
    if "sqliteconn" in names:
        _sqliteconn()
    return names


def apply_writer():
    names = enabled()
    if "redistimeout" in names:
        _redistimeout()
    if "publisher" in names:
        _publisher()
    return names


def wrap_application(application, websocket_app):
    """The ASGI application with the lean auth path for websockets (if enabled)."""
    if "leanauth" not in enabled():
        return application

    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            return await websocket_app(scope, receive, send)
        return await application(scope, receive, send)

    return app


def lean_websocket_app():
    from channels.routing import URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from realtime.routing import websocket_urlpatterns

    return AllowedHostsOriginValidator(LeanAuthMiddleware(URLRouter(websocket_urlpatterns)))


class LeanAuthMiddleware:
    """Session cookie -> user in one database hop; `send` passes through unwrapped."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        from channels.db import database_sync_to_async
        from django.conf import settings

        cookies = {}
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                for part in value.decode("latin1").split(";"):
                    k, _, v = part.strip().partition("=")
                    cookies[k] = v
        user = await database_sync_to_async(_load_user)(cookies.get(settings.SESSION_COOKIE_NAME))
        return await self.inner(dict(scope, user=user, cookies=cookies), receive, send)


def _load_user(session_key):
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.auth.models import AnonymousUser
    from django.utils.crypto import constant_time_compare

    if not session_key:
        return AnonymousUser()
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user_id, backend_path = session[SESSION_KEY], session[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return AnonymousUser()
    verify = getattr(user, "get_session_auth_hash", None)
    if verify and not constant_time_compare(session.get(HASH_SESSION_KEY) or "", verify()):
        return AnonymousUser()
    user.has_perm("tasks.view_task")  # fills the permission cache in the same hop
    return user


def _headfix():
    import asyncio

    from django.conf import settings

    from realtime import hub as hub_module, metrics

    async def check_head(self, epoch, head):
        now = asyncio.get_running_loop().time()
        if epoch != self.epoch:
            self._new_epoch(epoch, head)
            await self.announce_head()
            return
        behind = getattr(self, "_bench_behind", None)
        if head <= self.last:
            self._bench_behind = None
            return
        if behind is None or self.last >= behind[1]:
            self._bench_behind = (now, head)  # wait for this head; later ones get their own wait
            return
        since, seen = behind
        if now - since >= settings.REALTIME_REORDER_WINDOW:
            metrics.GAPS.inc(seen - self.last)
            self._pending = {s: e for s, e in self._pending.items() if s > seen}
            self.last = seen
            self.known_head = max(self.known_head, seen)
            self._bench_behind = None
            metrics.HEAD.set(self.known_head)
            await self.announce_head()

    hub_module.Hub.check_head = check_head


def _sqliteconn():
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db["CONN_MAX_AGE"] = 600


def _publisher():
    import asyncio
    import threading

    from channels.layers import get_channel_layer

    from realtime import metrics, publish
    from realtime.protocol import LAYER_CHANGES, STREAM_GROUP

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="bench-publisher", daemon=True).start()
    original = publish.send_now

    def send_now(epoch, events):
        try:
            asyncio.get_running_loop()
            return original(epoch, events)  # inside a server: its own loop is the right one
        except RuntimeError:
            pass
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            message = {"type": LAYER_CHANGES, "epoch": epoch, "events": events}
            asyncio.run_coroutine_threadsafe(layer.group_send(STREAM_GROUP, message), loop).result(10)
            metrics.PUBLISHED.inc(len(events))
        except Exception as exc:
            metrics.PUBLISH_FAILURES.inc()
            publish.log.warning("publish failed for seq %s-%s: %s", events[0]["seq"], events[-1]["seq"], exc)

    publish.send_now = send_now


def _redistimeout():
    from django.conf import settings

    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    if "hosts" in config:
        config["hosts"] = [h if isinstance(h, dict) else {"address": h, "socket_timeout": 15} for h in config["hosts"]]


def database_url(url):
    """The writer's DATABASE_URL, with asynchronous commit if that prototype is on."""
    if "asynccommit" in enabled() and url.startswith("postgres"):
        return url + ("&" if "?" in url else "?") + "options=-c%20synchronous_commit%3Doff"
    return url

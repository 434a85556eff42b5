"""Check the live stream end to end, the way a dashboard sees it.

    manage.py check_stream --url ws://dash.example.com/ws/dashboard/

1. Signs in: a short-lived session for --user (or for a temporary superuser that is
   deleted afterwards) is written straight into the database, like a login would.
2. Connects to --url with that session cookie and an Origin header, sends `subscribe` and
   waits for the `sync`.
3. Makes a change through the normal sequenced write path (creates a probe task, then
   deletes it), from this process, and waits for both events to arrive on the socket.
4. Reports how long each step took. If a step fails it exits non-zero with a message that
   says what to fix.

Run it with the same settings as the servers (DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY):
the session must be readable by the server, and the change must travel through the same
channel layer the servers listen to.
"""
import asyncio
import json
import time
import uuid
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime.client import StreamState
from realtime.protocol import (
    CLOSE_BY_OPERATOR, CLOSE_FORBIDDEN, CLOSE_NOT_SIGNED_IN, CLOSE_PROTOCOL_VIOLATION, PING, PONG,
)

TERMINAL_HINTS = {
    CLOSE_NOT_SIGNED_IN: "the server did not accept the session: it reads sessions from a different database or "
          "uses a different DJANGO_SECRET_KEY than this command. Run check_stream with the servers' "
          "DATABASE_URL and DJANGO_SECRET_KEY.",
    CLOSE_FORBIDDEN: "the user may not view tasks: give --user the tasks.view_task permission (or omit --user "
          "to use a temporary superuser).",
    CLOSE_PROTOCOL_VIOLATION: "the server says this client broke the protocol; check that the server "
          "and this command run the same release.",
    CLOSE_BY_OPERATOR: "an operator closed this user's dashboards from the admin; run again, or use another --user.",
}


class Probe(StreamState):
    """The client side of the check: the stream's client rules (realtime/client.py) on one
    connection, noting when each change arrived and how ("live" or through a "resync").

    It holds a small view (the newest tasks), as a dashboard does: a whole-table subscribe is
    refused on a large table, and the probe task, being the newest, enters the window and
    leaves it when it is deleted."""

    VIEW = {"limit": 10}

    def __init__(self, ws, timeout):
        super().__init__(view=self.VIEW)
        self.ws, self.timeout = ws, timeout
        self.seen = {}  # seq -> (event, monotonic time of arrival, how: "live" or "resync")
        self.resyncs = 0

    async def send(self, frame):
        await self.ws.send(json.dumps(frame))

    async def subscribe(self):
        await self.send(self.subscribe_frame())

    async def next_frame(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError
        return json.loads(await asyncio.wait_for(self.ws.recv(), remaining))

    async def handle(self, frame):
        """Apply one frame; returns the frame type."""
        kind = frame.get("type")
        if kind == PING:
            await self.send({"type": PONG, "id": frame["id"]})
        if self.apply(frame):
            await self.subscribe()
        return kind

    def apply_sync(self, frame):
        if self.last is not None:
            self.resyncs += 1
            # A resync covers what was missed: remember the probe rows it carries, and the
            # rows seen before that its window no longer holds (deleted).
            now = time.monotonic()
            for row in frame.get("tasks", []):
                self.seen.setdefault(row["version"], ({"entity": "task", "op": "upsert", "data": row}, now, "resync"))
            held = {row["id"] for row in frame.get("tasks", [])}
            for event, _, _ in list(self.seen.values()):
                object_id = event["data"]["id"]
                if event["op"] == "upsert" and object_id not in held:
                    self.seen.setdefault(("deleted", object_id),
                                         ({"entity": "task", "op": "delete", "data": {"id": object_id}}, now, "resync"))
        super().apply_sync(frame)

    def apply_range(self, frame):
        before = self.last
        applied = super().apply_range(frame)
        if self.last != before:  # the range was applied: note its task items' arrival
            now = time.monotonic()
            for item in frame["items"]:
                if item["entity"] != "task":
                    continue
                if item["op"] == "upsert":
                    self.seen[item["data"]["version"]] = (item, now, "live")
                elif not item.get("left"):
                    self.seen[("deleted", item["data"]["id"])] = ({**item, "seq": frame["to"]}, now, "live")
        return applied

    def apply_event(self, event):
        before = self.last
        applied = super().apply_event(event)
        if self.last != before:
            now = time.monotonic()
            self.seen[event["seq"]] = (event, now, "live")
            if event["op"] == "delete":
                self.seen[("deleted", event["data"]["id"])] = (event, now, "live")
        return applied

    async def wait_for(self, key, deadline):
        while key not in self.seen:
            await self.handle(await self.next_frame(deadline))
        return self.seen[key]


class Command(BaseCommand):
    help = ("Connect to the dashboard WebSocket as a signed-in client, make a change, and report "
            "whether and how fast it arrived. Exits non-zero, saying what to fix, if it did not.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/dashboard/",
                            help="the WebSocket URL of the server (or balancer) to check")
        parser.add_argument("--origin", default=None,
                            help="Origin header (default: http(s)://host of --url); must be in DJANGO_ALLOWED_HOSTS")
        parser.add_argument("--user", default=None,
                            help="username to sign in as (default: a temporary superuser, deleted afterwards)")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each step")
        parser.add_argument("--max-latency", type=float, default=None,
                            help="fail if the change takes longer than this many seconds to arrive")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args, url, origin, user, timeout, max_latency, json: bool = False, **options):
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise CommandError(f"--url must be a ws:// or wss:// URL such as ws://127.0.0.1:8000/ws/dashboard/, got {url!r}")
        if origin is None:
            origin = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise CommandError("check_stream needs the `websockets` package: pip install websockets") from None

        session_key, cleanup = self.sign_in(user)
        try:
            result = asyncio.run(self.probe_stream(url, origin, session_key, timeout))
        finally:
            cleanup()
        if max_latency is not None and result["change_arrived_s"] > max_latency:
            raise CommandError(
                f"the change arrived after {result['change_arrived_s'] * 1000:.0f} ms, over --max-latency "
                f"{max_latency * 1000:.0f} ms: look at the servers' CPU, the channel layer (Redis) latency "
                "and dashboard_stream_gaps_total in /metrics")
        if json:
            import json as json_module

            self.stdout.write(json_module.dumps(result))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"OK: connected in {result['connect_s'] * 1000:.0f} ms, synced at seq {result['head']} in "
                f"{result['sync_s'] * 1000:.0f} ms; probe task {result['probe_id']} arrived live in "
                f"{result['change_arrived_s'] * 1000:.0f} ms (seq {result['probe_seq']}), its deletion in "
                f"{result['delete_arrived_s'] * 1000:.0f} ms (seq {result['delete_seq']})"))

    # Signing in ------------------------------------------------------------------------------

    def sign_in(self, username):
        """Create a session for `username` (or a temporary superuser); return (key, cleanup)."""
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
        from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
        from importlib import import_module

        User = get_user_model()
        temporary = None
        if username:
            try:
                user = User.objects.get(**{User.USERNAME_FIELD: username})
            except User.DoesNotExist:
                raise CommandError(f"no user {username!r} in this database; omit --user to use a temporary superuser") from None
        else:
            name = f"check_stream_{uuid.uuid4().hex[:10]}"
            temporary = user = User.objects.create_superuser(name, f"{name}@invalid.example", None)
        engine = import_module(settings.SESSION_ENGINE)
        if not issubclass(engine.SessionStore, DbSessionStore) and settings.SESSION_ENGINE.endswith(".cache"):
            raise CommandError(f"SESSION_ENGINE {settings.SESSION_ENGINE} keeps sessions out of the database; "
                               "check_stream can only sign in with sessions the servers can read")
        session = engine.SessionStore()
        session[SESSION_KEY] = user._meta.pk.value_to_string(user)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.set_expiry(300)
        session.create()

        def cleanup():
            session.delete()
            if temporary is not None:
                temporary.delete()

        return session.session_key, cleanup

    # The check ---------------------------------------------------------------------------------

    async def probe_stream(self, url, origin, session_key, timeout):
        import websockets

        from tasks.models import Task

        headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}", "Origin": origin}
        started = time.monotonic()
        try:
            ws = await websockets.connect(url, additional_headers=headers, open_timeout=timeout,
                                          ping_interval=None, max_size=None, close_timeout=2)
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status == 403:
                raise CommandError(
                    f"the server refused the handshake with 403: Origin {origin!r} is not allowed. Add its host "
                    "to DJANGO_ALLOWED_HOSTS on the servers, or pass --origin with an allowed one.") from None
            if status == 404:
                raise CommandError(f"{url} is not the WebSocket endpoint (404): it is /ws/dashboard/") from None
            raise CommandError(f"the server answered the handshake with HTTP {status}; is {url} a daphne "
                               "server (not a plain HTTP one), and does the proxy pass WebSocket upgrades?") from None
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
            raise CommandError(f"could not connect to {url} ({type(exc).__name__}: {exc}). Is daphne running "
                               "there, and does the balancer pass WebSocket upgrades?") from None
        connected = time.monotonic()
        probe = Probe(ws, timeout)
        probe_id = None
        try:
            await probe.subscribe()
            deadline = time.monotonic() + timeout
            while probe.last is None:
                await probe.handle(await probe.next_frame(deadline))
            synced = time.monotonic()

            def create():
                task = Task.objects.create(title=f"check_stream probe {uuid.uuid4().hex[:8]}",
                                           description="Created and deleted by manage.py check_stream.")
                return task.pk, task.version

            change_at = time.monotonic()
            probe_id, probe_seq = await sync_to_async(create)()
            _, arrived, how = await self._arrival(probe, probe_seq, change_at + timeout, "the new probe task")

            def delete():
                task = Task.objects.get(pk=probe_id)
                task.delete()

            delete_at = time.monotonic()
            await sync_to_async(delete)()
            deleted_id, probe_id = probe_id, None
            delete_event, delete_arrived, delete_how = await self._arrival(
                probe, ("deleted", deleted_id), delete_at + timeout, "the probe task's deletion")
            if how != "live" or delete_how != "live":
                raise CommandError(
                    "the change reached the client only through a resync, not as a live event: this "
                    "command and the servers do not share a channel layer. Run check_stream with the "
                    "servers' REDIS_URL (and the same REDIS_PREFIX), and check that /healthz on every "
                    "server reports the channel layer ok.")
            return {
                "ok": True, "url": url, "head": probe.last, "connect_s": connected - started,
                "sync_s": synced - connected, "probe_id": deleted_id, "probe_seq": probe_seq,
                "change_arrived_s": arrived - change_at, "delete_seq": delete_event.get("seq"),
                "delete_arrived_s": delete_arrived - delete_at, "resyncs": probe.resyncs,
                "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
            }
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            hint = TERMINAL_HINTS.get(code, "look at the server log for the reason (and /healthz).")
            raise CommandError(f"the server closed the connection with code {code}: {hint}") from None
        except asyncio.TimeoutError:
            raise CommandError(self._timeout_hint(probe, timeout)) from None
        finally:
            if probe_id is not None:
                await sync_to_async(lambda: Task.objects.filter(pk=probe_id).delete())()
            await ws.close()

    async def _arrival(self, probe, key, deadline, what):
        try:
            return await probe.wait_for(key, deadline)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(what) from None

    def _timeout_hint(self, probe, timeout):
        if probe.last is None:
            return (f"no sync within {timeout:.0f} s of subscribing: the server accepted the socket but did not "
                    "answer. Check its database connection (/healthz) and its log.")
        return (f"the change did not arrive within {timeout:.0f} s, not even through a resync: the server's hub "
                "does not see this database's changes. Check that check_stream and the servers use the same "
                "DATABASE_URL, and the servers' /healthz and log.")

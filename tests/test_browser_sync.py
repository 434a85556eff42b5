"""Syncs in parts, close reasons and wire excerpts, in a real Chromium against real daphne.

A reset too large for one frame arrives as several `sync` parts. A proxy between the browser
and daphne cuts the first WebSocket right after the first part: the page must not keep that
fraction of the rows (nor its `seq`), and the next connection must bring all of them. Each
test waits on the page's state, never on a fixed sleep."""
import json
import socket
import threading
from types import SimpleNamespace

import pytest
from django.utils import timezone

from tasks.models import Agent, Task
from tests.browser_support import Dashboard, browser, context, server_env  # noqa: F401 (fixtures)
from tests.support.stream import database_versions

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

# Every Store notification, recorded from the moment main.js publishes `window.dashboard`
# (before any frame can be applied): [last, tasks held].
RECORD_NOTIFICATIONS = """
window.storeNotifications = [];
Object.defineProperty(window, 'dashboard', {
    configurable: true,
    get() { return this.__dashboard; },
    set(value) {
        this.__dashboard = value;
        value.store.subscribe(s => window.storeNotifications.push([s.last, s.tasks.size]));
    },
});
"""


# A proxy that cuts the first WebSocket after the first sync part --------------------------


def ws_frames(buffer):
    """Split complete WebSocket frames off the front of `buffer`:
    ([(raw bytes, fin, opcode, payload)], rest)."""
    frames = []
    while len(buffer) >= 2:
        fin, opcode, masked, size, at = buffer[0] & 0x80, buffer[0] & 0x0F, buffer[1] & 0x80, buffer[1] & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                break
            size, at = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            if len(buffer) < 10:
                break
            size, at = int.from_bytes(buffer[2:10], "big"), 10
        mask = buffer[at:at + 4] if masked else None
        at += 4 if masked else 0
        if len(buffer) < at + size:
            break
        payload = buffer[at:at + size]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((buffer[:at + size], bool(fin), opcode, payload))
        buffer = buffer[at + size:]
    return frames, buffer


class CutAfterFirstPart:
    """A loopback TCP proxy in front of daphne. The first WebSocket through it is cut (both
    sides closed, no close frame: the browser sees 1006) right after the server's first
    `sync` part has been forwarded; every other connection, HTTP or WebSocket, passes as it is.

    The browser's offer of permessage-deflate is removed from the handshake, so the server's
    frames are plain text the proxy can read (daphne does not compress anyway)."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.armed = True
        self.cut_after = None  # the sync part (parsed) after which the first WebSocket was cut
        self.websockets = 0
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.listener.close()
        for sock in self.connections:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return  # closed
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.connections += [down, up]
            link = SimpleNamespace(cut=False, done=threading.Event())
            threading.Thread(target=self._upstream, args=(down, up, link), daemon=True).start()

    def _upstream(self, down, up, link):
        """Browser -> daphne. The first request's headers decide whether this link is cut."""
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = down.recv(65536)
                if not data:
                    return up.close()
                head += data
            if head.startswith(b"GET /ws/dashboard/"):
                lines = head.split(b"\r\n")
                head = b"\r\n".join(l for l in lines if not l.lower().startswith(b"sec-websocket-extensions:"))
                with self.lock:
                    self.websockets += 1
                    link.cut, self.armed = self.armed, False
            threading.Thread(target=self._downstream, args=(down, up, link), daemon=True).start()
            up.sendall(head)
            while data := down.recv(65536):
                if not link.done.is_set():  # after the cut: read and drop until the browser closes
                    try:
                        up.sendall(data)
                    except OSError:
                        if not link.done.is_set():
                            raise
        except OSError:
            pass
        finally:
            # Everything the browser sent has been read, so this close is a FIN, not a RST
            # that could make it drop the last frame unread.
            self._close(up)
            self._close(down)

    def _downstream(self, down, up, link):
        """Daphne -> browser; on the link to cut, frame by frame until the first sync part is through."""
        buffer, switched, message = b"", False, b""
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                if not link.cut:
                    down.sendall(data)
                    continue
                buffer += data
                if not switched:
                    if b"\r\n\r\n" not in buffer:
                        continue
                    end = buffer.index(b"\r\n\r\n") + 4
                    down.sendall(buffer[:end])
                    buffer, switched = buffer[end:], True
                frames, buffer = ws_frames(buffer)
                for raw, fin, opcode, payload in frames:
                    down.sendall(raw)
                    if opcode in (0, 1):
                        message += payload
                    if not fin or opcode not in (0, 1):
                        continue
                    frame, message = json.loads(message), b""
                    if frame.get("type") == "sync":
                        # The cut: the browser gets the frame and then the end of the stream;
                        # daphne loses its client. The browser's side closes when it answers.
                        self.cut_after = frame
                        link.done.set()
                        self._close(up)
                        down.shutdown(socket.SHUT_WR)
                        return
        except OSError:
            pass
        self._close(up)
        try:
            down.shutdown(socket.SHUT_WR)  # the browser reads what was sent, then the end
        except OSError:
            pass

    @staticmethod
    def _close(sock):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def parse(payload):
    return json.loads(payload) if isinstance(payload, str) else json.loads(payload.decode())


class SocketLog:
    """Every frame of every WebSocket a context's pages open, in order, per socket."""

    def __init__(self, ctx):
        self.sockets = []
        ctx.on("page", lambda page: page.on("websocket", self._opened))

    def _opened(self, ws):
        entry = {"url": ws.url, "received": [], "sent": [], "closed": False}
        self.sockets.append(entry)
        ws.on("framereceived", lambda payload: entry["received"].append(parse(payload)))
        ws.on("framesent", lambda payload: entry["sent"].append(parse(payload)))
        ws.on("close", lambda _ws: entry.__setitem__("closed", True))

    def syncs(self, index):
        return [f for f in self.sockets[index]["received"] if f.get("type") == "sync"]

    def subscribes(self, index):
        return [f for f in self.sockets[index]["sent"] if f.get("type") == "subscribe"]


# 1 -------------------------------------------------------------------------------------------


def test_a_connection_cut_after_the_first_sync_part_leaves_nothing_half_applied(daphne, context):
    now = timezone.now()
    Task.objects.bulk_create([
        Task(title=f"{i:04d} " + "x" * 195, status=("queued", "running", "failed")[i % 3],
             created_at=now - timezone.timedelta(seconds=600 - i))
        for i in range(600)
    ])
    Agent.objects.create(name="atlas", status="idle", last_heartbeat=now)
    server = daphne(REALTIME_MAX_SEND_BYTES=16384)
    proxy = CutAfterFirstPart(server.port)
    try:
        ctx = context(server)
        ctx.add_init_script(RECORD_NOTIFICATIONS)
        log = SocketLog(ctx)
        board = Dashboard(ctx, SimpleNamespace(http=proxy.http))
        tasks, agents = database_versions()
        window = dict(sorted(tasks.items(), reverse=True)[:200])  # the view's window: the newest 200
        board.wait_converged((window, agents), timeout=30_000)
        board.wait_open()

        # The server did send the view's sync in parts, and the proxy cut the first socket after part 1.
        first = proxy.cut_after
        assert first is not None, "the first WebSocket never carried a sync"
        assert first["part"] == 1 and first["parts"] > 2, {k: v for k, v in first.items() if k not in ("tasks", "agents", "current")}
        assert first["reset"] is True
        assert 0 < len(first["tasks"]) < 200
        assert len(log.sockets) >= 2, "it took a second connection"
        assert log.sockets[0]["closed"]
        assert [(f["part"], f["parts"]) for f in log.syncs(0)] == [(1, first["parts"])]

        # The second socket resubscribed from where the page was before part 1 (nothing
        # applied), with the same view, and its sync came whole in parts, all with the same
        # epoch, seq and reset, the running tasks beside the window among them.
        view = {"status": None, "agent": None, "q": None, "limit": 200, "current": True}
        assert log.subscribes(0)[0] == {"type": "subscribe", "since": None, "epoch": None, "view": view}
        assert log.subscribes(1)[0] == {"type": "subscribe", "since": None, "epoch": None, "view": view}
        parts = log.syncs(1)
        assert [f.get("part") for f in parts] == list(range(1, len(parts) + 1)) and len(parts) > 2
        assert {(f["epoch"], f["seq"], f["reset"], f["parts"]) for f in parts} == {(first["epoch"], first["seq"], True, len(parts))}
        assert sum(len(f["tasks"]) for f in parts) == 200
        assert sum(len(f["current"]) for f in parts) == 200, "every running task, for the agents panel"

        # The page holds exactly the window; the store never showed a fraction of it.
        assert board.store_versions() == (window, agents)
        notes = board.page.evaluate("window.storeNotifications")
        assert notes and all(size == 200 for _last, size in notes), notes[:5]
        assert notes[0][0] == first["seq"]
        assert board.page.evaluate("window.dashboard.store.last") == first["seq"]

        # And the page shows them: the server's counts, the footer, the table's rows.
        assert board.page.text_content('[data-count="total"]') == "600"
        assert board.page.text_content('[data-count="running"]') == "200"
        assert board.page.text_content("#task-footer") == "The 200 newest of 600 tasks"
        assert board.page.evaluate("window.dashboard.table.ids.length") == 200
        rendered = board.rendered_task_ids()
        assert rendered and set(rendered) <= set(window)
        assert rendered[0] == max(window)
        assert board.errors == []
    finally:
        proxy.close()


# 2 -------------------------------------------------------------------------------------------


def test_too_many_dashboards_says_why_and_retries_until_one_is_closed(daphne, context):
    server = daphne(REALTIME_MAX_SOCKETS_PER_USER=1)
    first = Dashboard(context(server), server)
    first.wait_open()
    second = Dashboard(context(server), server)
    page = second.page
    # Read in one step while the pill says so (between retries it says "Reconnecting…").
    shown = page.wait_for_function("""() => {
        const $ = (id) => document.getElementById(id);
        if (!$('conn-text').textContent.startsWith('Too many open dashboards · retrying in ')) return null;
        return {state: document.body.dataset.connection, detail: $('conn-detail').textContent,
                detailShown: !$('conn-detail').hidden, retry: !$('retry-now').hidden, tooltip: $('conn').title};
    }""").json_value()
    said = "operator has 1 dashboards open already; close some and retry"
    assert shown == {"state": "waiting", "detail": said, "detailShown": True, "retry": True, "tooltip": said}

    first.page.close()  # one fewer: the waiting page gets in on a later try
    second.wait_open(timeout=40_000)
    assert page.is_hidden("#conn-detail")
    assert second.errors == []


# 3 -------------------------------------------------------------------------------------------


def test_an_error_cut_to_an_excerpt_on_the_wire_says_so(daphne, context):
    long_error = "Traceback (most recent call last): " + "frame " * 60
    cut = Task.objects.create(title="Nightly backup", status="failed", error=long_error)
    short = Task.objects.create(title="Weekly report", status="failed", error="exit status 137")
    plain = Task.objects.create(title="Queued job", status="queued")
    server = daphne(REALTIME_WIRE_TEXT_CHARS=100)
    board = Dashboard(context(server), server)
    board.wait_open()
    badge = f'tr.task[data-id="{cut.pk}"] .badge'
    board.page.wait_for_function(f"() => document.querySelector('{badge}')?.title.includes('…')")
    title = board.page.get_attribute(badge, "title")
    assert title == f"Failed: {long_error[:100]}…\n(Shortened here: the full error is in the admin.)"
    assert board.page.get_attribute(f'tr.task[data-id="{cut.pk}"] .task-link', "href") == f"/tasks/{cut.pk}/"  # the whole error is on its page
    assert board.page.get_attribute(f'tr.task[data-id="{short.pk}"] .badge', "title") == "Failed: exit status 137"
    assert board.page.get_attribute(f'tr.task[data-id="{plain.pk}"] .badge', "title") is None
    assert board.row_text(cut.pk, ".task-link") == "Nightly backup"
    assert board.errors == []

"""A viewer can only view: sockets that ask for syncs and never read take
a bounded share of the server's memory, on daphne (whose transport buffers without limit) as
on uvicorn. Repeated subscribes wait for the last answer to be taken; past
REALTIME_MAX_OUTBOX_BYTES for a socket, or REALTIME_MAX_USER_OUTBOX_BYTES for a user, the
socket is closed with 4008 (come back). Bystanders keep their stream."""
import asyncio
import base64
import json
import os
import socket

import pytest
from asgiref.sync import sync_to_async

from tasks.models import Task
from tests.support.faults import metric, process_rss, scrape_metrics
from tests.support.stream import StreamClient

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]
KINDS = ["daphne", "uvicorn"]


def client_frame(text):
    payload, mask = text.encode(), os.urandom(4)
    n = len(payload)
    header = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class DeafSocket:
    """A WebSocket client that sends and never reads (its receive buffer kept small)."""

    def __init__(self, port, cookie):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws/dashboard/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Origin: http://127.0.0.1\r\nCookie: {cookie}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)  # the handshake only, byte by byte: nothing after it is read
        assert b" 101 " in head, head

    def subscribe(self):
        try:
            self.sock.sendall(client_frame('{"type":"subscribe","since":null,"epoch":null}'))
            return True
        except OSError:
            return False  # the server closed it

    def close(self):
        self.sock.close()


async def deaf_viewers(server, cookie, sockets, seconds):
    """`sockets` sockets that ask for a fresh sync every 0.3 s for `seconds` and never read."""
    deaf = [await sync_to_async(DeafSocket)(server.port, cookie) for _ in range(sockets)]
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        for one in deaf:
            await sync_to_async(one.subscribe)()
        await asyncio.sleep(0.3)
    return deaf


def sync_bytes(rows):
    return rows * 330  # a task row on the wire, about


@pytest.mark.parametrize("kind", KINDS)
async def test_sockets_that_ask_and_never_read_hold_a_bounded_share(daphne, session_cookie, kind):
    rows = 12_000
    await sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"task number {i}") for i in range(rows)]))()
    server = daphne(kind=kind, REALTIME_HEARTBEAT_INTERVAL=30, REALTIME_HEARTBEAT_TIMEOUT=30)
    bystander = StreamClient(server.ws, session_cookie, server.http, view={"limit": 20}).start()
    try:
        assert await bystander.wait_for(lambda c: c.last is not None, 15)
        before = process_rss(server.proc.pid)
        deaf = await deaf_viewers(server, session_cookie, sockets=10, seconds=8)
        grown = process_rss(server.proc.pid) - before
        # Each socket holds at most the answer to one subscribe (about 4 MB here); without the
        # bound, daphne held one per subscribe answered (8 each in 8 s: about 300 MB).
        print(f"{kind}: RSS grew {grown / 2**20:.0f} MB for 10 sockets asking for {sync_bytes(rows) / 2**20:.1f} MB syncs")
        assert grown < 10 * sync_bytes(rows) * 2.5, f"the server grew by {grown / 2**20:.0f} MB"
        await sync_to_async(Task.objects.create)(title="still live")
        head = await sync_to_async(lambda: Task.objects.order_by("-version").first().version)()
        assert await bystander.wait_for(lambda c: c.last is not None and c.last >= head, 10)
        for one in deaf:
            one.close()
    finally:
        await bystander.stop()


async def test_a_user_past_its_byte_bound_has_sockets_closed_with_4008(daphne, session_cookie):
    """Daphne's transports hold what their readers do not take: the user's bound closes the
    sockets that pass it. (Under uvicorn the same sockets hold nothing in the process: its
    transports pause writing, so their frames wait in the kernel and one answer each.)"""
    kind = "daphne"
    rows = 12_000
    await sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"task number {i}") for i in range(rows)]))()
    server = daphne(kind=kind, REALTIME_MAX_USER_OUTBOX_BYTES=2 * 2**20, REALTIME_HEARTBEAT_INTERVAL=30,
                    REALTIME_HEARTBEAT_TIMEOUT=30)
    deaf = await deaf_viewers(server, session_cookie, sockets=6, seconds=4)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        closes = metric(await sync_to_async(scrape_metrics)(server.http), "dashboard_ws_outbox_closes_total", '{bound="user"}')
        if closes >= 3:
            break
        assert loop.time() < deadline, f"only {closes:g} sockets were closed for the user's bound"
        await asyncio.sleep(0.3)
    for one in deaf:
        one.close()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_viewer_claiming_a_number_beyond_the_head_resets_only_itself(daphne, session_cookie, kind):
    """A viewer's subscribe with its epoch and a `since` far past the head used to rotate the
    epoch: a full reset of every dashboard on every process, at will."""
    import websockets

    from tests.test_hostile import viewer_cookie

    await sync_to_async(lambda: [Task.objects.create(title=f"t{i}") for i in range(3)])()
    server = daphne(kind=kind, REALTIME_HEARTBEAT_INTERVAL=1, REALTIME_HEARTBEAT_TIMEOUT=3)
    bystanders = [StreamClient(server.ws, session_cookie, server.http, view={"limit": 10}).start(),
                  StreamClient(server.ws, session_cookie, server.http).start()]
    cookie = await sync_to_async(viewer_cookie)("mallory")
    try:
        assert all([await c.wait_for(lambda c: c.last is not None, 15) for c in bystanders])
        epoch = bystanders[0].epoch
        async with websockets.connect(server.ws, additional_headers={"Cookie": cookie, "Origin": server.http},
                                      ping_interval=None, max_size=None) as ws:
            for i in range(5):
                await ws.send(json.dumps({"type": "subscribe", "since": 10**9 + i, "epoch": epoch}))
                while True:  # its own answer: a reset
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
                    elif frame["type"] == "sync":
                        assert frame["reset"] is True and frame["epoch"] == epoch
                        break
                await asyncio.sleep(1.1)
        await asyncio.sleep(1.5)  # a head check or two on the server
        await sync_to_async(Task.objects.create)(title="after")
        for client in bystanders:
            head = await sync_to_async(lambda: Task.objects.order_by("-version").first().version)()
            assert await client.wait_for(lambda c: c.last == head, 10)
            # (Without Redis the server learns of this process's write from its head check: the
            # clients catch up with a delta, never a reset.)
            assert client.epoch == epoch and client.resets == 1, (client.resets, client.syncs)
    finally:
        for client in bystanders:
            await client.stop()

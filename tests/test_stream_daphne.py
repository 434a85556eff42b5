"""The stream against a real daphne process: clients end equal to the database."""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from tasks.models import Agent, Task
from tests.support.stream import StreamClient, database_versions

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def write_burst(n):
    agent = Agent.objects.create(name="burst-agent")
    tasks = [Task.objects.create(title=f"t{i}") for i in range(n)]
    for i, task in enumerate(tasks):
        task.status, task.agent, task.progress = "running", agent, i % 100
        task.save()
    tasks[0].delete()
    Task.objects.filter(status="running").update(progress=100, status="succeeded")


async def test_clients_end_equal_to_the_database(daphne, session_cookie):
    server = daphne()
    clients = [StreamClient(server.ws, session_cookie, server.http).start() for _ in range(5)]
    try:
        assert all([await c.wait_for(lambda c: c.last is not None) for c in clients])
        await sync_to_async(write_burst)(30)
        expected = await sync_to_async(database_versions)()
        for client in clients:
            assert await client.wait_for(lambda c: c.versions() == expected), server.log()[-2000:]
            assert client.gaps == 0
    finally:
        for client in clients:
            await client.stop()


async def test_daphne_sends_the_registered_close_codes(daphne, session_cookie):
    """1009 (frame too large) reaches the client as a close frame, not a dropped connection."""
    import json

    import websockets

    server = daphne(REALTIME_MAX_FRAME_BYTES="1000")
    headers = {"Cookie": session_cookie, "Origin": server.http}
    async with websockets.connect(server.ws, additional_headers=headers, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "x" * 5000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_health_answers_while_the_hub_listens_on_redis(daphne, session_cookie, redis_server):
    """The health check's round trip shares the process's Redis receive loop with the hub."""
    import json
    import urllib.request

    server = daphne(REDIS_URL=redis_server.url)
    client = StreamClient(server.ws, session_cookie, server.http).start()
    try:
        assert await client.wait_for(lambda c: c.last is not None)

        def health():
            with urllib.request.urlopen(server.http + "/healthz", timeout=10) as response:
                return response.status, json.loads(response.read())

        status, body = await asyncio.get_running_loop().run_in_executor(None, health)
        # Anonymous: which part answers, never what the parts are (staff see the class).
        assert status == 200 and body["checks"]["channel_layer"] == {"ok": True}
    finally:
        await client.stop()


async def test_a_server_started_while_redis_is_down_serves_and_catches_up(daphne, session_cookie, redis_server):
    """The hub starts without the layer (the database keeps clients right) and joins later."""
    redis_server.stop()
    server = daphne(REDIS_URL=redis_server.url)
    client = StreamClient(server.ws, session_cookie, server.http).start()
    try:
        assert await client.wait_for(lambda c: c.last is not None), server.log()[-2000:]
        await asyncio.get_running_loop().run_in_executor(None, redis_server.start)
        await sync_to_async(write_burst)(5)
        expected = await sync_to_async(database_versions)()
        assert await client.wait_for(lambda c: c.versions() == expected, timeout=20), server.log()[-2000:]
    finally:
        await client.stop()


class BufferedTransport:
    """The parts of a Twisted TCP transport the eager writer reads, over a real socket pair."""

    def __init__(self, sock):
        self.sock = sock
        self.connected, self.disconnecting, self._writeDisconnected = True, False, False
        self.dataBuffer, self.offset, self._tempDataLen = b"", 0, 0
        self.buffered = []

    def writeSomeData(self, data):
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def write(self, data):  # Twisted's buffered write: held until the reactor polls
        self.buffered.append(bytes(data))
        self._tempDataLen += len(data)


def test_the_eager_writer_sends_at_once_and_buffers_only_what_the_kernel_refused():
    import socket

    from realtime.daphne_compat import eager_writer

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        transport = BufferedTransport(ours)
        write = eager_writer(transport)
        write(b"hello")
        assert theirs.recv(100) == b"hello" and transport.buffered == []

        big = bytes(range(256)) * 40_000  # 10 MB: more than the kernel takes at once
        write(big)
        assert len(transport.buffered) == 1 and 0 < len(transport.buffered[0]) < len(big)
        # Once something waits in the buffer, later frames queue behind it, never ahead.
        write(b"next")
        assert transport.buffered[-1] == b"next"
        kernel = len(big) - len(transport.buffered[0])
        received = b""
        theirs.settimeout(2)
        while len(received) < kernel:  # each recv waits 2 s at most
            chunk = theirs.recv(1 << 20)
            assert chunk, f"the socket closed after {len(received)} of {kernel} bytes"
            received += chunk
        assert received == big[:kernel]

        closing = BufferedTransport(ours)
        closing.disconnecting = True
        eager_writer(closing)(b"bye")
        assert closing.buffered == [b"bye"]
        assert eager_writer(object()) is None  # another kind of transport keeps its own write
    finally:
        ours.close()
        theirs.close()

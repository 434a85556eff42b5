"""A process that got SIGTERM says so on /healthz (503 "draining") for as long as it still
answers, so a balancer and the pages' health probe look for another process instead of coming
back to one that is closing its sockets with 1012."""
import asyncio
import signal
import time

import pytest
import requests
from asgiref.sync import sync_to_async

from tests.support.stream import StreamClient

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_healthz_says_draining_after_sigterm(daphne, session_cookie, kind):
    server = daphne(kind=kind, REALTIME_SHUTDOWN_GRACE=2)
    client = StreamClient(server.ws, session_cookie, server.http, reconnect=False).start()
    session = requests.Session()  # one kept-alive connection: it outlives the listening socket
    try:
        assert await client.wait_for(lambda c: c.last is not None, 15)  # the hub (and its SIGTERM handler) runs
        assert (await sync_to_async(session.get)(f"{server.http}/healthz", timeout=5)).status_code == 200
        server.signal(signal.SIGTERM)
        answers = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and server.proc.poll() is None:
            try:
                response = await sync_to_async(session.get)(f"{server.http}/healthz", timeout=2)
            except requests.RequestException:
                break  # the process closed the connection: nothing more to ask
            answers.append((response.status_code, response.json().get("status")))
        assert answers, "no answer after SIGTERM at all"
        assert all(answer == (503, "draining") for answer in answers), answers
    finally:
        await client.stop()
        session.close()


def test_the_spread_asked_for_grows_with_the_sockets_closed():
    from realtime.hub import restart_spread

    assert restart_spread(1) == 0.5 and restart_spread(2000) == 5.0 and restart_spread(10**6) == 30.0


async def test_a_socket_closed_for_a_restart_is_told_within_how_long_to_come_back(daphne, session_cookie):
    import json

    import websockets

    server = daphne(REALTIME_SHUTDOWN_GRACE=2)
    async with websockets.connect(server.ws, additional_headers={"Cookie": session_cookie, "Origin": server.http},
                                  ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "since": None, "epoch": None, "view": {"limit": 5}}))
        frames = []
        while not any(f["type"] == "sync" for f in frames):
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        server.signal(signal.SIGTERM)
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 1012
    closing = [f for f in frames if f["type"] == "error" and f["code"] == "closing"]
    assert closing and closing[-1]["close"] == 1012 and closing[-1]["retry_within"] == 0.5, closing

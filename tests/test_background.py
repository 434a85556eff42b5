"""The process's background work (realtime/background.py starts the hub, which runs the
periodic jobs, the head check and the SIGTERM handler) starts from HTTP requests alone, and
a start that failed because the database was down is tried again by later requests."""
import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.utils import timezone

from realtime import background
from tasks.models import Agent
from tests.conftest import database_url_of
from tests.support.faults import TcpProxy

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


class UnreachableDatabase:
    """The test's database, out of a server's reach until `restore()`. SQLite: a path through
    a directory that does not exist yet, then a link to the real one. PostgreSQL: a proxy that
    refuses connections, then forwards them."""

    def __init__(self, tmp_path):
        self.tmp_path, self.proxy, self.link = tmp_path, None, None

    async def url(self):
        settings_dict = connection.settings_dict
        if connection.vendor == "sqlite":
            database = Path(settings_dict["NAME"])
            self.link, self.target = self.tmp_path / "later", database.parent
            return f"sqlite:///{self.link / database.name}"
        self.proxy = await TcpProxy(int(settings_dict.get("PORT") or 5432)).start()
        self.proxy.stop_upstream()
        url = database_url_of(settings_dict)
        return url.replace(f":{settings_dict.get('PORT') or 5432}/", f":{self.proxy.port}/")

    def restore(self):
        if self.proxy is not None:
            self.proxy.start_upstream()
        else:
            self.link.symlink_to(self.target, target_is_directory=True)

    async def close(self):
        if self.proxy is not None:
            await self.proxy.close()


def get(url):
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException as exc:
        return repr(exc)


async def wait_for(what, check, timeout, poke=None):
    deadline = time.monotonic() + timeout
    while True:
        if poke is not None:
            await asyncio.to_thread(poke)
        if await asyncio.to_thread(check):
            return
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_start_that_failed_with_the_database_down_is_retried_by_later_requests(daphne, tmp_path, kind):
    silent = await Agent.objects.acreate(name="silent", status=Agent.Status.IDLE,
                                         last_heartbeat=timezone.now() - timedelta(hours=1))
    database = UnreachableDatabase(tmp_path)
    try:
        server = await asyncio.to_thread(daphne, kind=kind, DATABASE_URL=await database.url(), AGENT_SWEEP_INTERVAL="1",
                                         REALTIME_LOG_LEVEL="INFO")
        # The first request arrives while the database is down: the start fails.
        assert await asyncio.to_thread(get, f"{server.http}/healthz") == 503
        await wait_for("the failed start is logged", lambda: "could not start" in server.log(), 30)
        database.restore()
        # No socket ever connects: only HTTP requests, as when only agents call the API.
        await wait_for("the liveness sweep takes the silent agent offline",
                       lambda: Agent.objects.get(pk=silent.pk).status == Agent.Status.OFFLINE, 60,
                       poke=lambda: get(f"{server.http}/healthz"))
        assert "background work started" in server.log()
    finally:
        await database.close()


async def test_retries_back_off_and_stop_once_started(monkeypatch):
    """Each failure doubles the wait before the next request may try again, up to
    background.MAX_RETRY_DELAY; once a start succeeds, requests stop trying."""
    tries = []
    outcome = {"fail": True}

    class Hub:
        async def ensure_started(self):
            tries.append(asyncio.get_running_loop().time())
            if outcome["fail"]:
                raise RuntimeError("database is down")

    monkeypatch.setattr(background, "get_hub", lambda: Hub())
    now = {"t": 1000.0}
    monkeypatch.setattr(background, "_clock", lambda: now["t"])

    async def app(scope, receive, send):
        pass

    middleware = background.StartHub(app)

    async def request():
        await middleware({"type": "http"}, None, None)
        for _ in range(5):
            await asyncio.sleep(0)  # let the start attempt run

    delays = []
    for _ in range(10):
        before = len(tries)
        await request()
        assert len(tries) == before + 1
        await request()
        assert len(tries) == before + 1, "a request tried again before the wait was over"
        delay = middleware._starts[asyncio.get_running_loop()].retry_at - now["t"]
        delays.append(delay)
        now["t"] += delay
    assert delays[0] == background.FIRST_RETRY_DELAY
    assert delays == sorted(delays) and delays[-1] == background.MAX_RETRY_DELAY
    outcome["fail"] = False
    await request()
    count = len(tries)
    now["t"] += 3600
    await request()
    assert len(tries) == count, "the hub was asked to start again after it had started"

"""Fault tests: real daphne processes, a test-owned redis-server, dozens of clients that apply
the stream by PROTOCOL.md's rules, and a writer changing tasks while something breaks.

Each test ends with every client equal to the database (same rows, same versions) and no
server process crashed. Loopback only; every test is bounded and stops by itself. Each
prints one `[fault]` line with its numbers (run with -s to see them).

Run against PostgreSQL with
  DATABASE_URL=postgresql://postgres@127.0.0.1:5432/dashboard pytest tests/test_faults.py -s
"""
import asyncio
import json
import os
import runpy
import signal
import statistics
import time
import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async

from tests.conftest import ROOT
from tests.support.faults import (
    TcpProxy, Writer, catch_up, crash_lines, database_head, describe_difference, metric,
    percentile, process_rss, report, scrape_metrics, settle,
)
from tests.support.stream import ResilientStreamClient

pytestmark = [
    pytest.mark.server,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

# Short heartbeats keep the tests fast: interval + timeout = 2 s.
FAST = {"REALTIME_HEARTBEAT_INTERVAL": 1, "REALTIME_HEARTBEAT_TIMEOUT": 1}
IDLE_GRACE = 2.0  # client: abandon the socket after interval + this much silence


def layer_config(redis_url):
    """The servers' CHANNEL_LAYERS for this REDIS_URL, taken from settings.py itself, so the
    test process (the writer) publishes exactly the way a server process does."""
    saved = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = redis_url
    try:
        return runpy.run_path(str(ROOT / "dashboard_site" / "settings.py"))["CHANNEL_LAYERS"]
    finally:
        if saved is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = saved


class Stack:
    """Servers, clients and a writer for one fault test."""

    def __init__(self, daphne, redis, cookie):
        self.daphne, self.redis, self.cookie = daphne, redis, cookie
        self.servers, self.clients, self.proxies = [], [], []
        self.writer = Writer()
        self.stop_writing = asyncio.Event()
        self._writer_task = None

    def server(self, port=None, **env):
        env = {**FAST, "REDIS_URL": self.redis.url, "REALTIME_LOG_LEVEL": "INFO", **env}
        server = self.daphne(port=port, **env)
        self.servers.append(server)
        return server

    async def proxy(self, *servers):
        proxy = await TcpProxy(*[s.port for s in servers]).start()
        self.proxies.append(proxy)
        return proxy

    def client(self, url, origin, **options):
        options.setdefault("idle_grace", IDLE_GRACE)
        client = ResilientStreamClient(url, self.cookie, origin, **options).start()
        self.clients.append(client)
        return client

    async def connect(self, count, url, origin, **options):
        clients = [self.client(url, origin, **options) for _ in range(count)]
        ok = await asyncio.gather(*(c.wait_for(lambda c: c.last is not None, 20) for c in clients))
        assert all(ok), f"{ok.count(False)} of {count} clients did not sync"
        return clients

    async def start_writing(self, rate=20.0):
        await sync_to_async(self.writer.setup)()
        self._writer_task = asyncio.ensure_future(self.writer.run(self.stop_writing, rate))

    async def stop_writer(self):
        self.stop_writing.set()
        if self._writer_task is not None:
            await self._writer_task

    async def head(self):
        return (await sync_to_async(database_head)())[1]

    async def finish(self, clients=None, timeout=30):
        """Stop writing, then every client must equal the database; returns (changes, seconds
        to settle)."""
        await self.stop_writer()
        start = time.monotonic()
        clients = self.clients if clients is None else clients
        bad, expected = await settle(clients, timeout)
        assert not bad, "clients differ from the database:\n" + "\n".join(
            describe_difference(c, expected) for c in bad[:5])
        changes = await self.head() - self.writer.head_at_start
        return changes, time.monotonic() - start

    def assert_no_crash(self, *servers):
        for server in servers or self.servers:
            lines = crash_lines(server.log())
            assert not lines, f"server on {server.port} crashed:\n" + "\n".join(lines[:20]) + server.log()[-3000:]

    async def close(self):
        self.stop_writing.set()
        if self._writer_task is not None and not self._writer_task.done():
            self._writer_task.cancel()
        await asyncio.gather(*(c.stop() for c in self.clients), return_exceptions=True)
        for proxy in self.proxies:
            await proxy.close()
        from django.db import connections

        await sync_to_async(connections.close_all)()  # the writer thread's connection


@pytest.fixture
async def stack(daphne, redis_server, settings, session_cookie):
    settings.CHANNEL_LAYERS = layer_config(redis_server.url)
    stack = Stack(daphne, redis_server, session_cookie)
    yield stack
    await stack.close()


def http_json(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def median_latency(clients, since=None, until=None):
    values = [lat for c in clients for t, lat in c.latencies
              if (since is None or t >= since) and (until is None or t < until)]
    return percentile(values, 50), percentile(values, 95), len(values)


def gap_total(servers):
    return sum(metric(scrape_metrics(s.http), "dashboard_stream_gaps_total") for s in servers)


# 1. Redis outage ------------------------------------------------------------------------------


async def test_redis_outage(stack):
    """Redis stops for 5 s during the stream and comes back: clients stay close to the
    database during the outage (the hub's head poll tells them to resync), the live path
    through the layer comes back afterwards, and everyone ends equal to the database."""
    a, b = stack.server(), stack.server()
    lb = await stack.proxy(a, b)
    clients = await stack.connect(40, lb.ws(), lb.http)
    await stack.start_writing(rate=20)
    await asyncio.sleep(3)

    stack.redis.stop()
    outage_start = time.monotonic()
    await asyncio.sleep(2)
    status, health = await sync_to_async(http_json)(f"{a.http}/healthz")
    assert status == 503 and not health["checks"]["channel_layer"]["ok"], health
    assert health["checks"]["database"]["ok"], health
    # Without the layer, the head poll still brings clients up to date.
    head = await stack.head()
    during = await catch_up(clients, head, timeout=10)
    assert during is not None, "clients did not catch up while Redis was down"
    await asyncio.sleep(max(0.0, 5 - (time.monotonic() - outage_start)))

    stack.redis.start()
    outage = time.monotonic() - outage_start
    head = await stack.head()
    recovery = await catch_up(clients, head, timeout=20)
    assert recovery is not None, "clients did not catch up after Redis came back"
    status, health = await sync_to_async(http_json)(f"{a.http}/healthz")
    assert status == 200, health

    # The live path is back: after a short settling time, changes arrive as events again
    # (no new gaps in the hubs, no resyncs in the clients).
    await asyncio.sleep(3)
    gaps_before = await sync_to_async(gap_total)([a, b])
    syncs_before = sum(c.syncs for c in clients)
    window_start = time.monotonic()
    await asyncio.sleep(3)
    gaps_after = await sync_to_async(gap_total)([a, b])
    syncs_after = sum(c.syncs for c in clients)
    p50, p95, n = median_latency(clients, since=window_start)

    changes, settle_s = await stack.finish()
    report("redis_outage", servers=2, clients=len(clients), changes=changes, outage_s=outage,
           caught_up_during_outage_s=during, recovery_s=recovery,
           live_p50_ms=p50 * 1000, live_p95_ms=p95 * 1000, resyncs_after=syncs_after - syncs_before,
           gaps_after=gaps_after - gaps_before, lost=0)
    assert gaps_after == gaps_before, (
        f"the hubs still miss layer messages {time.monotonic() - outage_start - outage:.0f} s after Redis "
        f"came back ({gaps_after - gaps_before} gaps in 3 s): a hub did not rejoin the stream group")
    assert syncs_after == syncs_before
    stack.assert_no_crash()

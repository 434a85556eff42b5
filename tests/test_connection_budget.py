"""The database connections one server process opens, counted from outside under load, against
the formula docs/deploy.md gives (section "Database connections"): request threads, the
overflow past them, and the stream's own pools (realtime/dbwork.py).

The load: the test holds the stream lock, so that claims pile up in every request thread and
every overflow slot (and more are refused with 503); dashboards connect and subscribe with and
without views while that goes on (access, sync and views pools); the hub's head check and the
periodic jobs run on their own (a silent agent gives the liveness sweep a write to wait for)."""
import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.utils import timezone

from tasks.models import Agent
from tests.conftest import ROOT
from tests.support.stream import StreamClient
from tests.support.stream_lock import StreamLockHeld
from tests.test_request_path import _agents_with_tokens

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text()
SETTINGS = {"DJANGO_REQUEST_THREADS": 3, "DJANGO_REQUEST_OVERFLOW": 4, "REALTIME_MAX_CONCURRENT_SYNCS": 2}


def documented_budget(values):
    """The number of connections docs/deploy.md says a process opens at most, for `values`."""
    found = re.search(r"opens at most `([A-Z_0-9 +]+)`\s+database connections", DEPLOY_DOC)
    assert found, "docs/deploy.md states no connection budget (\"opens at most `...` database connections\")"
    terms = [term.strip() for term in found.group(1).split("+")]
    return sum(int(term) if term.isdigit() else values[term] for term in terms)


class ConnectionCounter:
    """Open database connections of one server process, as the database sees them (PostgreSQL:
    sessions with the process's application_name) or as the kernel does (SQLite: the
    process's open descriptors of the database file)."""

    def __init__(self, name):
        self.name = name
        self.most = 0

    def count(self, server):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [self.name])
                now = cursor.fetchone()[0]
        else:
            database = Path(connection.settings_dict["NAME"]).resolve()
            fds = Path(f"/proc/{server.proc.pid}/fd")
            now = 0
            for fd in fds.iterdir():
                try:
                    now += Path(os.readlink(fd)) == database
                except OSError:
                    pass  # closed meanwhile
        self.most = max(self.most, now)
        return now


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts a process's open files through /proc")
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_process_under_load_opens_no_more_connections_than_documented(daphne, session_cookie, kind):
    budget = documented_budget(SETTINGS)
    threads, overflow = SETTINGS["DJANGO_REQUEST_THREADS"], SETTINGS["DJANGO_REQUEST_OVERFLOW"]
    keys = _agents_with_tokens(threads + overflow + 3, queued=threads + overflow + 3)
    Agent.objects.create(name="silent", status=Agent.Status.IDLE, last_heartbeat=timezone.now() - timedelta(hours=1))
    name = f"budget-{os.getpid()}-{kind}"
    counter = ConnectionCounter(name)
    server = daphne(kind=kind, PGAPPNAME=name, REALTIME_STREAM_LOCK_TIMEOUT="120", API_AGENT_RATE="100000/min",
                    AGENT_SWEEP_INTERVAL="1", **SETTINGS)

    def call(method, path, key):
        return requests.request(method, f"{server.http}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=150)

    assert all(call("GET", "/api/agent/me/", key).status_code == 200 for key in keys)

    async def count_until(what, done, timeout=60):
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"{what} within {timeout} s\n{server.log()[-3000:]}"
            await asyncio.to_thread(counter.count, server)
            await asyncio.sleep(0.2)

    async def load():
        views = [None, {"status": ["queued"]}, {"status": ["running", "failed"], "limit": 5}, {"q": "queued"}]
        clients = [StreamClient(server.ws, session_cookie, server.http, view=views[i % len(views)]).start()
                   for i in range(8)]
        callers = ThreadPoolExecutor(len(keys))  # every claim in flight at once
        lock, claims = None, []
        try:
            await count_until("every dashboard synced", lambda: all(c.syncs for c in clients))
            lock = await asyncio.to_thread(StreamLockHeld)
            loop = asyncio.get_running_loop()
            claims = [loop.run_in_executor(callers, call, "POST", "/api/agent/claim/", key) for key in keys]
            for i, client in enumerate(clients):  # new syncs and windows while the writers wait
                await client.change_view(views[(i + 1) % len(views)])
            await count_until("the claims past the overflow refused", lambda: sum(c.done() for c in claims) >= 3)
            for _ in range(15):  # the load holds: keep counting a while
                await asyncio.to_thread(counter.count, server)
                await asyncio.sleep(0.2)
            refused = [c.result().status_code for c in claims if c.done()]
            assert set(refused) == {503}, refused
        finally:
            if lock is not None:
                await asyncio.to_thread(lock.release)
            for client in clients:
                await client.stop()
            callers.shutdown(wait=False)
        assert {c.status_code for c in await asyncio.gather(*claims) if c.status_code != 503} == {200}

    asyncio.run(load())
    # Every request thread and overflow slot held a connection while the lock was held, plus
    # at least the head check's; never more than the documented budget.
    assert threads + overflow + 1 <= counter.most <= budget, (counter.most, budget)

"""Several processes: a change made through process A (admin, API, a management command, a
`manage.py shell` script) reaches dashboards connected to process B, live and in order.

Also: /healthz names the database and the channel layer, /metrics has the operational
numbers, the logs have connect/disconnect/resync lines, and `manage.py check_stream` checks
the whole path and says what to fix when it is broken.
"""
import asyncio
import json
import re
import subprocess
import sys
import time

import pytest
import requests
from asgiref.sync import sync_to_async

from tests.conftest import ROOT, free_port
from tests.support.faults import metric, report, scrape_metrics
from tests.support.stream import StreamClient, database_rows

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

FAST = {"REALTIME_HEARTBEAT_INTERVAL": 1, "REALTIME_HEARTBEAT_TIMEOUT": 2}


class Cluster:
    def __init__(self, daphne, redis, env, cookie):
        self.redis, self.cookie = redis, cookie
        self.env = dict(env, REDIS_URL=redis.url, **{k: str(v) for k, v in FAST.items()})
        self.a = daphne(REDIS_URL=redis.url, **FAST)
        self.b = daphne(REDIS_URL=redis.url, **FAST)

    def manage(self, *args, timeout=60, **env):
        """Run manage.py in its own process with the servers' settings."""
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=dict(self.env, **env),
                              capture_output=True, text=True, timeout=timeout)

    def http_session(self, server):
        """A requests session signed in as the staff user, with a CSRF token from `server`."""
        session = requests.Session()
        name, value = self.cookie.split("=", 1)
        session.cookies.set(name, value)
        response = session.get(f"{server.http}/admin/tasks/task/add/", timeout=10)
        assert response.status_code == 200, response.status_code
        session.csrf = session.cookies["csrftoken"]
        return session


@pytest.fixture
def cluster(daphne, redis_server, server_env, session_cookie):
    return Cluster(daphne, redis_server, server_env, session_cookie)


def head():
    from realtime.snapshot import stream_position

    return stream_position()[1]


async def reach(clients, seq, timeout=10):
    start = time.monotonic()
    ok = await asyncio.gather(*(c.wait_for(lambda c: c.last is not None and c.last >= seq, timeout) for c in clients))
    assert all(ok), f"{ok.count(False)} clients on B did not get seq {seq}"
    return time.monotonic() - start


async def test_changes_made_through_a_reach_dashboards_on_b_in_order(cluster):
    a, b = cluster.a, cluster.b
    clients = [StreamClient(b.ws, cluster.cookie, b.http).start() for _ in range(10)]
    try:
        assert all(await asyncio.gather(*(c.wait_for(lambda c: c.last is not None) for c in clients)))
        timings = {}

        # 1. The admin on A: add a task through the change form.
        session = await sync_to_async(cluster.http_session)(a)
        start = time.monotonic()
        response = await sync_to_async(session.post)(
            f"{a.http}/admin/tasks/task/add/", timeout=10, allow_redirects=False,
            data={"title": "made in the admin on A", "description": "", "status": "queued", "progress": "0",
                  "agent": "", "error": "", "csrfmiddlewaretoken": session.csrf, "_save": "Save"})
        assert response.status_code == 302, response.text[:2000]
        timings["admin"] = time.monotonic() - start + await reach(clients, await sync_to_async(head)())

        # 2. The operator API on A: create, then edit.
        start = time.monotonic()
        headers = {"X-CSRFToken": session.csrf}
        created = await sync_to_async(session.post)(f"{a.http}/api/tasks/", json={"title": "made through the API on A"},
                                                    headers=headers, timeout=10)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        edited = await sync_to_async(session.patch)(f"{a.http}/api/tasks/{task_id}/", json={"title": "edited via the API"},
                                                    headers=headers, timeout=10)
        assert edited.status_code == 200, edited.text
        timings["api"] = time.monotonic() - start + await reach(clients, await sync_to_async(head)())

        # 3. A management command in its own process.
        start = time.monotonic()
        done = await asyncio.to_thread(cluster.manage, "seed_demo", "--agents", "3", "--tasks", "25", "--seed", "7", "--force")
        assert done.returncode == 0, done.stderr
        timings["command"] = time.monotonic() - start + await reach(clients, await sync_to_async(head)())

        # 4. A `manage.py shell` script: saves, a bulk update, a deletion.
        script = (
            "from tasks.models import Task\n"
            "ids = list(Task.objects.order_by('id').values_list('id', flat=True))\n"
            "t = Task.objects.get(pk=ids[0]); t.title = 'edited in a shell on A'; t.save()\n"
            "Task.objects.filter(pk__in=ids[1:6]).update(progress=42)\n"
            "Task.objects.get(pk=ids[-1]).delete()\n"
        )
        start = time.monotonic()
        done = await asyncio.to_thread(cluster.manage, "shell", "-c", script)
        assert done.returncode == 0, done.stderr
        timings["shell"] = time.monotonic() - start + await reach(clients, await sync_to_async(head)())

        tasks, agents = await sync_to_async(database_rows)()
        for client in clients:
            assert client.tasks == tasks and client.agents == agents
            # Live and in order: every number applied as the next one, no gap, no resync.
            assert client.gaps == 0 and client.syncs == 1, (client.gaps, client.syncs)
        report("scaleout", processes="A(write)+B(read)", clients=len(clients), changes=clients[0].events,
               **{f"{path}_s": seconds for path, seconds in timings.items()},
               resyncs=sum(c.syncs - 1 for c in clients),
               lost=sum(sum(1 for i in set(tasks) | set(c.tasks) if c.tasks.get(i) != tasks.get(i)) for c in clients))
    finally:
        for client in clients:
            await client.stop()


async def test_health_metrics_and_logs(cluster):
    b = cluster.b
    status = requests.get(f"{b.http}/healthz", headers={"Cookie": cluster.cookie}, timeout=10)  # staff see the class
    body = status.json()
    assert status.status_code == 200, body
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"], body
    assert body["checks"]["channel_layer"].get("backend") in ("RedisChannelLayer", "RedisPubSubChannelLayer"), body

    client = StreamClient(b.ws, cluster.cookie, b.http, reconnect=False).start()
    assert await client.wait_for(lambda c: c.last is not None)
    await client.ws.send(json.dumps({"type": "subscribe", "since": client.last, "epoch": client.epoch}))
    assert await client.wait_for(lambda c: c.syncs >= 2)
    values = await sync_to_async(scrape_metrics)(b.http)
    await client.stop()
    await asyncio.sleep(0.5)

    text = requests.get(f"{b.http}/metrics", timeout=10).text
    for name in ("dashboard_ws_open_connections", "dashboard_ws_connections", "dashboard_ws_frames_sent",
                 "dashboard_ws_syncs", "dashboard_ws_heartbeat_timeouts", "dashboard_ws_refused",
                 "dashboard_ws_closed", "dashboard_publish_failures", "dashboard_stream_gaps"):
        assert re.search(rf"^# TYPE {name}(_total)? ", text, re.M), f"/metrics lacks {name}"
    assert metric(values, "dashboard_ws_open_connections") >= 1
    assert metric(values, "dashboard_ws_syncs_total", '{kind="delta"}') >= 1

    log = b.log()
    assert re.search(r"INFO realtime\.consumer connect user=operator", log), log[-2000:]
    assert re.search(r"INFO realtime\.consumer resync channel=\d+ since=\d+ head=\d+ reset=False", log), log[-2000:]
    assert re.search(r"INFO realtime\.consumer disconnect channel=\d+ reason=.*code=1000", log), log[-2000:]


async def test_check_stream_command(cluster):
    b = cluster.b
    ok = await asyncio.to_thread(cluster.manage, "check_stream", "--url", b.ws, "--json", "--timeout", "10")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["change_arrived_s"] < 5, result

    # The command on the in-process layer cannot reach the servers' Redis: it must say so.
    no_redis = await asyncio.to_thread(cluster.manage, "check_stream", "--url", b.ws, "--timeout", "10", REDIS_URL="")
    assert no_redis.returncode != 0
    assert "do not share a channel layer" in no_redis.stderr and "REDIS_URL" in no_redis.stderr, no_redis.stderr

    nothing = await asyncio.to_thread(cluster.manage, "check_stream", "--url", f"ws://127.0.0.1:{free_port()}/ws/dashboard/")
    assert nothing.returncode != 0 and "could not connect" in nothing.stderr, nothing.stderr

    bad_origin = await asyncio.to_thread(cluster.manage, "check_stream", "--url", b.ws, "--origin", "http://evil.example")
    assert bad_origin.returncode != 0 and "DJANGO_ALLOWED_HOSTS" in bad_origin.stderr, bad_origin.stderr

    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    from tasks.models import Task

    # It leaves nothing behind: no probe task, no temporary user, no session of its own.
    assert not await sync_to_async(Task.objects.filter(title__startswith="check_stream probe").exists)()
    assert not await sync_to_async(User.objects.filter(username__startswith="check_stream_").exists)()
    report("check_stream", change_arrived_ms=result["change_arrived_s"] * 1000,
           delete_arrived_ms=result["delete_arrived_s"] * 1000, sync_ms=result["sync_s"] * 1000)
    assert await sync_to_async(Session.objects.count)() <= 1  # the test's own login only


async def test_check_stream_works_on_a_table_too_large_for_a_whole_table_subscribe(daphne, redis_server, server_env):
    """check_stream holds a view, like a dashboard: it works past REALTIME_MAX_STREAM_ROWS."""
    from tasks.models import Task

    await sync_to_async(lambda: Task.objects.bulk_create([Task(title=f"t{i}") for i in range(30)]))()
    server = daphne(REDIS_URL=redis_server.url, REALTIME_MAX_STREAM_ROWS=20, **FAST)
    env = dict(server_env, REDIS_URL=redis_server.url, REALTIME_MAX_STREAM_ROWS="20")
    ok = await asyncio.to_thread(subprocess.run, [sys.executable, "manage.py", "check_stream", "--url", server.ws,
                                                  "--json", "--timeout", "10"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["ok"]

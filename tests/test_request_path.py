"""The request path under ASGI: every middleware async, static files served by WhiteNoise
only under STATIC_URL, and the actor of a change still known when the view runs in a thread."""
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.cache import cache
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.http import HttpResponse
from django.test import AsyncClient
from django.urls import include, path
from django.utils.module_loading import import_string

from realtime.models import Change
from tasks import tokens
from tasks.models import Agent, Task
from tests.support.stream_lock import StreamLockHeld


def test_every_middleware_runs_in_the_event_loop():
    # One synchronous middleware makes Django cross into a worker thread and back for every
    # request under ASGI.
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]
    assert sync_only == [], f"synchronous-only middleware: {sync_only}"


@pytest.mark.django_db
async def test_static_files_are_served_under_asgi():
    client = AsyncClient()
    response = await client.get("/static/realtime/connection.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"class Connection" in body
    assert "max-age" in response.headers.get("Cache-Control", "") or response.headers.get("Last-Modified")


@pytest.mark.django_db
async def test_other_requests_pass_through_under_asgi():
    client = AsyncClient()
    assert (await client.get("/static/no/such/file.js")).status_code == 404
    assert (await client.get("/healthz")).status_code in (200, 503)
    response = await client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response.headers["Location"]


# The project's URLs plus one view that notes when it runs (ROOT_URLCONF in the test below).
_noted = []


def _noting_view(request):
    _noted.append(("view", threading.get_ident()))
    return HttpResponse("ok")


urlpatterns = [path("noted/", _noting_view), path("", include("dashboard_site.urls"))]


async def test_a_request_on_a_borrowed_thread_sends_started_then_runs_the_view_then_sends_finished(settings):
    """dashboard_site/request_threads.py sends Django's request signals itself: request_started
    before the middleware and the view, request_finished after, once each and on the request's
    thread, as Django does (their receivers reset the query log and manage connections)."""
    from dashboard_site.request_threads import RequestHandler

    settings.ROOT_URLCONF = __name__
    handler = RequestHandler(1, settings.STATIC_URL)
    _noted.clear()

    def on_started(sender, **kwargs):
        _noted.append(("started", threading.get_ident()))

    def on_finished(sender, **kwargs):
        _noted.append(("finished", threading.get_ident()))

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/noted/", "raw_path": b"/noted/", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    try:
        app = ApplicationCommunicator(handler, scope)
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await app.receive_output(10)
        body = await app.receive_output(10)
        await app.wait(10)
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)
        for executor in handler._idle:
            executor.shutdown(wait=False)
    assert (start["status"], body["body"]) == (200, b"ok"), (start, body)
    assert [name for name, _ in _noted] == ["started", "view", "finished"]
    assert len({thread for _, thread in _noted}) == 1, f"not all on the request's thread: {_noted}"


def _last_change(task_id):
    return Change.objects.filter(entity="task", object_id=task_id).order_by("-seq").first()


@pytest.mark.django_db(transaction=True)
async def test_an_operator_request_under_asgi_names_its_user(staff_user):
    task = await Task.objects.acreate(title="t")
    client = AsyncClient()
    await sync_to_async(client.force_login)(staff_user)
    response = await client.post(f"/api/tasks/{task.pk}/cancel/", content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    change = await sync_to_async(_last_change)(task.pk)
    assert (change.actor_kind, change.actor_id) == ("operator", str(staff_user.pk))


@pytest.mark.django_db(transaction=True)
async def test_an_agent_request_under_asgi_names_the_agent():
    await sync_to_async(cache.clear)()
    agent = await Agent.objects.acreate(name="worker-asgi")
    await Task.objects.acreate(title="job")
    token = (await sync_to_async(tokens.issue)(agent))[1]
    response = await AsyncClient().post("/api/agent/claim/", content_type="application/json",
                                        headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content[:300]
    task_id = json.loads(response.content)["id"]
    change = await sync_to_async(_last_change)(task_id)
    assert (change.actor_kind, change.actor_label) == ("agent", "worker-asgi")


def _reports(server, token, task_id, count):
    import requests

    with requests.Session() as http:
        for i in range(count):
            response = http.patch(f"{server.http}/api/agent/tasks/{task_id}/", json={"progress": i % 100},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert response.status_code == 200, response.text[:300]


def _opened(server):
    from tests.support.faults import metric, scrape_metrics

    return metric(scrape_metrics(server.http), "dashboard_database_connections_opened_total")


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_requests_reuse_their_threads_database_connections(daphne, kind):
    """40 progress reports through a real server open a database connection or two, not 40:
    requests borrow long-lived threads (dashboard_site/request_threads.py). With Django's
    thread per request (DJANGO_REQUEST_THREADS=0) each report opens its own."""
    agent = Agent.objects.create(name="bot", status=Agent.Status.BUSY)
    task = Task.objects.create(title="t", status=Task.Status.RUNNING, agent=agent, progress=1)
    _, token = tokens.issue(agent)
    server = daphne(kind=kind, API_AGENT_RATE="100000/min")
    _reports(server, token, task.pk, 3)  # warm: the first requests open the pool's connections
    before = _opened(server)
    _reports(server, token, task.pk, 40)
    assert _opened(server) - before <= 3

    stock = daphne(kind=kind, API_AGENT_RATE="100000/min", DJANGO_REQUEST_THREADS="0")
    _reports(stock, token, task.pk, 3)
    before = _opened(stock)
    _reports(stock, token, task.pk, 40)
    assert _opened(stock) - before >= 40


def test_more_concurrent_requests_than_threads_all_complete(daphne):
    """Past DJANGO_REQUEST_THREADS a request gets a thread of its own instead of waiting."""
    from concurrent.futures import ThreadPoolExecutor

    agents = [Agent.objects.create(name=f"bot{i}", status=Agent.Status.BUSY) for i in range(12)]
    jobs = []
    for agent in agents:
        task = Task.objects.create(title=agent.name, status=Task.Status.RUNNING, agent=agent, progress=1)
        jobs.append((tokens.issue(agent)[1], task.pk))
    server = daphne(DJANGO_REQUEST_THREADS="2", API_AGENT_RATE="100000/min")
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda job: _reports(server, job[0], job[1], 15), jobs))
    assert set(Task.objects.values_list("progress", flat=True)) == {14}
    # Concurrent reports are written together (tasks/report_batch.py); each change still
    # names the agent that reported it.
    for agent in agents:
        labels = set(Change.objects.filter(entity="task", object_id=agent.tasks.get().pk, actor_kind="agent")
                     .values_list("actor_label", flat=True))
        assert labels == {agent.name}


def test_the_cache_keeps_its_redis_connections_across_requests(daphne, redis_server):
    """The agents' rate limit counts in Redis on every API request; 40 requests must not
    open 40 Redis connections (dashboard_site/redis_cache.py)."""
    import redis

    agent = Agent.objects.create(name="bot", status=Agent.Status.BUSY)
    task = Task.objects.create(title="t", status=Task.Status.RUNNING, agent=agent, progress=1)
    _, token = tokens.issue(agent)
    server = daphne(REDIS_URL=redis_server.url)
    _reports(server, token, task.pk, 3)
    watch = redis.Redis.from_url(redis_server.url)
    before = watch.info("stats")["total_connections_received"]
    _reports(server, token, task.pk, 40)
    opened = watch.info("stats")["total_connections_received"] - before
    assert opened <= 3, f"{opened} Redis connections for 40 requests"
    assert any(b"throttle" in key for key in watch.keys("*"))  # the limit did count there


# Past the request threads: a bounded overflow, then 503 ------------------------------------------


def _agents_with_tokens(count, queued=0):
    agents = [Agent.objects.create(name=f"claimer-{i}") for i in range(count)]
    for i in range(queued):
        Task.objects.create(title=f"queued {i}")
    return [tokens.issue(agent)[1] for agent in agents]


def _wait_answered(futures, count, what, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while sum(f.done() for f in futures) < count:
        assert time.monotonic() < deadline, f"{what}: {sum(f.done() for f in futures)} of {count} answered in {timeout} s"
        threading.Event().wait(0.1)
    return [f.result() for f in futures if f.done()]


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_past_the_overflow_requests_are_answered_503_and_the_rest_complete(daphne, kind):
    """DJANGO_REQUEST_THREADS=2 and DJANGO_REQUEST_OVERFLOW=2: with the stream lock held, four
    claims wait in four threads (and connections) and the next three get 503 at once, with
    Retry-After and JSON under /api/; a page outside /api/ gets a short plain answer. Once
    the lock is released the four waiting claims complete."""
    import requests
    from concurrent.futures import ThreadPoolExecutor

    keys = _agents_with_tokens(7, queued=7)
    server = daphne(kind=kind, DJANGO_REQUEST_THREADS="2", DJANGO_REQUEST_OVERFLOW="2",
                    REALTIME_STREAM_LOCK_TIMEOUT="120", API_AGENT_RATE="100000/min")

    def call(method, path, key=None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.request(method, f"{server.http}{path}", headers=headers, timeout=150)

    assert all(call("GET", "/api/agent/me/", key).status_code == 200 for key in keys)  # tokens' first use recorded
    lock = StreamLockHeld()
    pool = ThreadPoolExecutor(7)
    try:
        claims = [pool.submit(call, "POST", "/api/agent/claim/", key) for key in keys]
        # Four claims wait for the lock, each in a thread of its own; the other three are refused.
        answered = _wait_answered(claims, 3, "claims past the overflow")
        assert [r.status_code for r in answered] == [503] * 3, [(r.status_code, r.text[:200]) for r in answered]
        for response in answered:
            assert response.headers["Content-Type"] == "application/json" and int(response.headers["Retry-After"]) >= 1
            assert "busy" in response.json()["detail"], response.text
        page = call("GET", "/healthz")
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/plain"), page.text[:200]
        assert int(page.headers["Retry-After"]) >= 1 and len(page.text) < 200 and "busy" in page.text
        waiting = [f for f in claims if not f.done()]
        assert len(waiting) == 4, "a claim finished while the stream lock was held"
        lock.release()
        assert sorted(f.result(150).status_code for f in waiting) == [200] * 4
    finally:
        lock.release()
        pool.shutdown()
    assert call("GET", "/healthz").status_code == 200
    assert "request threads and overflow are all busy" in server.log()

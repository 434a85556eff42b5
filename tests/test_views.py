"""The dashboard page, sign-in, /healthz and /metrics."""
import re

import pytest
from channels.layers import InMemoryChannelLayer
from django.contrib.auth.models import Permission
from django.db import OperationalError, connections

from tasks import views
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db


def shown_count(html, attribute, value):
    """The number rendered in the element marked attribute="value"."""
    match = re.search(rf'{attribute}="{value}"[^>]*>\s*(\d+)\s*<', html)
    assert match, f"no {attribute}={value} count in the page"
    return int(match.group(1))


def agent_row(html, pk):
    """The HTML of the agent list item of agent `pk`."""
    match = re.search(rf'<li[^>]*data-id="{pk}"[^>]*>(.*?)</li>', html, re.S)
    assert match, f"no agent row for {pk}"
    return match.group(1)


@pytest.fixture
def fleet():
    atlas = Agent.objects.create(name="atlas-agent", status="busy")
    Agent.objects.create(name="borealis-agent", status="offline")
    Agent.objects.create(name="cobalt-agent")
    Task.objects.create(title="Build web-frontend on main", status="running", agent=atlas, progress=61)
    for i in range(3):
        Task.objects.create(title=f"Queued job {i}")
    Task.objects.create(title="Nightly backup of users", status="succeeded", progress=100)
    Task.objects.create(title="Transcode video 88", status="failed", error="oom")
    return atlas


# The dashboard ---------------------------------------------------------------------------------


def test_anonymous_users_are_redirected_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_staff_user_sees_counts_titles_and_agents_from_the_database(client, staff_user, fleet):
    client.force_login(staff_user)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    counts = {value: n for value, _, n in response.context["task_counts"]}
    assert counts == {"queued": 3, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert response.context["total_tasks"] == 6
    assert shown_count(html, "data-count", "queued") == 3
    assert shown_count(html, "data-count", "running") == 1
    assert shown_count(html, "data-count", "total") == 6
    assert shown_count(html, "data-agent-count", "offline") == 1
    for title in ("Build web-frontend on main", "Queued job 2", "Nightly backup of users", "Transcode video 88"):
        assert title in html
    for name in ("atlas-agent", "borealis-agent", "cobalt-agent"):
        assert name in html
    # The busy agent's row shows what it runs.
    assert "Build web-frontend on main" in agent_row(html, fleet.pk)
    assert re.search(r'<progress[^>]*value="61"', html)
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_page_follows_the_database(client, staff_user, fleet):
    client.force_login(staff_user)
    Task.objects.filter(status="queued").update(status="cancelled")
    Task.objects.create(title="Brand new task")
    response = client.get("/")
    counts = {value: n for value, _, n in response.context["task_counts"]}
    assert (counts["queued"], counts["cancelled"]) == (1, 3)
    assert "Brand new task" in response.content.decode()


def test_an_agent_row_shows_the_same_task_as_agent_current_task(client, staff_user):
    from datetime import timedelta

    from django.utils import timezone

    from tasks.selectors import current_task

    agent = Agent.objects.create(name="atlas-agent", status="busy")
    now = timezone.now()
    Task.objects.create(title="Older running task", status="running", agent=agent,
                        created_at=now - timedelta(hours=1), started_at=now - timedelta(hours=1))
    Task.objects.create(title="Newer running task", status="running", agent=agent,
                        created_at=now, started_at=now)
    assert current_task(agent.pk).title == "Newer running task"
    client.force_login(staff_user)
    html = client.get("/").content.decode()
    assert "Newer running task" in agent_row(html, agent.pk)


def test_empty_database_renders(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No tasks yet." in html and "No agents yet." in html


def test_a_user_without_view_task_permission_gets_403(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    assert client.get("/").status_code == 403


def test_a_user_with_view_task_permission_sees_the_page(client, django_user_model, fleet):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    user.user_permissions.add(Permission.objects.get(codename="view_task", content_type__app_label="tasks"))
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert "Transcode video 88" in response.content.decode()


def test_a_hostile_title_is_escaped(client, staff_user):
    hostile = "<img src=x onerror=alert(1)>"
    agent = Agent.objects.create(name="<script>alert('agent')</script>")
    Task.objects.create(title=hostile, status="running", agent=agent)
    client.force_login(staff_user)
    html = client.get("/").content.decode()
    assert hostile not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert(" not in html


# Signing in -------------------------------------------------------------------------------------


def test_login_page_renders_username_and_password_fields(client):
    response = client.get("/accounts/login/?next=/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html and 'type="password"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'name="next" value="/"' in html


def test_logging_in_through_the_form_reaches_the_dashboard(client, staff_user, fleet):
    response = client.post("/accounts/login/", {"username": "operator", "password": "operator-pass-123", "next": "/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    response = client.get("/")
    assert response.status_code == 200
    assert "atlas-agent" in response.content.decode()


def test_a_wrong_password_re_renders_with_an_error(client, staff_user):
    response = client.post("/accounts/login/", {"username": "operator", "password": "wrong", "next": "/"})
    assert response.status_code == 200
    assert "Your username and password didn't match" in response.content.decode()
    assert client.get("/").status_code == 302


def test_the_login_form_enforces_csrf(staff_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "operator", "password": "operator-pass-123"})
    assert response.status_code == 403


def test_logout_needs_a_post_and_signs_out(client, staff_user):
    client.force_login(staff_user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


# /healthz ---------------------------------------------------------------------------------------


def test_healthz_is_ok_when_the_database_and_layer_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["channel_layer"] == {"ok": True}  # the class is for staff (tests/test_security.py)


def test_healthz_needs_no_login_and_is_not_cached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


def broken_cursor(*args, **kwargs):
    raise OperationalError("database is locked (host db.internal, user fleet)")


def test_healthz_is_503_naming_the_database_when_its_cursor_fails(client, monkeypatch):
    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body == {"status": "unavailable",
                    "checks": {"database": {"ok": False}, "channel_layer": {"ok": True}}}


def test_healthz_never_shows_anonymous_callers_the_exception_text(client, monkeypatch):
    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    monkeypatch.setattr(views, "get_channel_layer", lambda: None)
    response = client.get("/healthz")
    assert response.status_code == 503
    text = response.content.decode()
    for leak in ("OperationalError", "locked", "db.internal", "fleet", "RuntimeError", "configured", "error"):
        assert leak not in text, leak
    assert response.json()["checks"] == {"database": {"ok": False}, "channel_layer": {"ok": False}}


def test_healthz_shows_staff_sessions_the_error_text(client, staff_user, monkeypatch):
    client.force_login(staff_user)
    # Only the health check's own query fails, so the session and the user can still be read.
    monkeypatch.setattr(views, "_check_database", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False, "error": "OperationalError: database is locked (host db.internal, user fleet)"}


def test_healthz_with_the_database_down_treats_a_session_it_cannot_read_as_anonymous(client, staff_user, monkeypatch):
    client.force_login(staff_user)
    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False}


def test_healthz_logs_each_failure_once_with_its_traceback(client, monkeypatch, caplog):
    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    with caplog.at_level("ERROR", logger="tasks.health"):
        client.get("/healthz")
    records = [r for r in caplog.records if r.name == "tasks.health"]
    assert len(records) == 1
    assert records[0].levelname == "ERROR"
    assert "database" in records[0].getMessage() and "database is locked" in records[0].getMessage()
    assert records[0].exc_info and records[0].exc_info[0] is OperationalError


def test_healthz_is_503_naming_the_channel_layer_when_redis_cannot_be_reached(client, staff_user, settings):
    from tests.conftest import free_port

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                    "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": {"ok": True}, "channel_layer": {"ok": False}}
    client.force_login(staff_user)
    layer = client.get("/healthz").json()["checks"]["channel_layer"]
    assert layer["ok"] is False and "Error" in layer["error"]


class SilentLayer(InMemoryChannelLayer):
    """A layer that accepts messages and never delivers them."""

    async def send(self, channel, message):
        return None


def test_healthz_is_503_when_the_channel_layer_never_answers(client, staff_user, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.SilentLayer"}}
    client.force_login(staff_user)
    response = client.get("/healthz")
    assert response.status_code == 503
    layer = response.json()["checks"]["channel_layer"]
    assert layer["ok"] is False and layer["error"].startswith("TimeoutError")


def test_healthz_is_503_when_no_channel_layer_is_configured(client, staff_user, monkeypatch):
    monkeypatch.setattr(views, "get_channel_layer", lambda: None)
    assert client.get("/healthz").json()["checks"]["channel_layer"] == {"ok": False}
    client.force_login(staff_user)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == {
        "ok": False, "error": "RuntimeError: no channel layer configured"
    }


def test_healthz_gives_signed_in_non_staff_users_no_error_text(client, django_user_model, monkeypatch):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-viewer-123"))
    monkeypatch.setattr(views, "get_channel_layer", lambda: None)
    assert client.get("/healthz").json()["checks"]["channel_layer"] == {"ok": False}


def test_healthz_reports_both_failures(client, monkeypatch):
    monkeypatch.setattr(connections["default"], "cursor", lambda *a, **k: (_ for _ in ()).throw(OperationalError("down")))
    monkeypatch.setattr(views, "get_channel_layer", lambda: None)
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False and checks["channel_layer"]["ok"] is False


# /metrics ---------------------------------------------------------------------------------------


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE dashboard_changes_published_total counter" in text
    assert "# TYPE dashboard_ws_open_connections gauge" in text


def test_metrics_are_refused_to_anonymous_remote_clients(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert "dashboard_" not in response.content.decode()


def test_metrics_are_open_to_staff_from_anywhere(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert "dashboard_changes_published_total" in response.content.decode()


def test_metrics_are_refused_to_signed_in_non_staff_remote_users(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-viewer-123"))
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_metrics_accept_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403


def test_metrics_without_a_configured_token_refuse_an_empty_bearer(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


def test_metrics_with_a_token_refuse_loopback_without_it(client, settings):
    """Behind a reverse proxy every request comes from 127.0.0.1: with a token, only it counts."""
    settings.METRICS_TOKEN = "scrape-token-123"
    for address in ("127.0.0.1", "::1"):
        response = client.get("/metrics", REMOTE_ADDR=address)
        assert response.status_code == 403, address
        assert "METRICS_TOKEN" in response.json()["detail"]
        assert client.get("/metrics", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer scrape-token-123").status_code == 200


def test_metrics_with_a_token_need_it_from_staff_sessions_too(client, settings, staff_user):
    settings.METRICS_TOKEN = "scrape-token-123"
    client.force_login(staff_user)
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200


def test_metrics_with_a_token_refuse_a_wrong_scheme_or_a_prefix_of_it(client, settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    for header in ("scrape-token-123", "Basic scrape-token-123", "Bearer scrape-token-12", "Bearer scrape-token-1234"):
        assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 403, header


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_metrics_without_a_token_refuse_proxied_loopback_requests(client, settings, header):
    settings.METRICS_TOKEN = ""
    value = "for=203.0.113.9" if header == "HTTP_FORWARDED" else "203.0.113.9"
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: value})
    assert response.status_code == 403
    assert "dashboard_" not in response.content.decode()


def test_metrics_without_a_token_allow_direct_loopback_and_staff_behind_a_proxy(client, settings, staff_user):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    client.force_login(staff_user)
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200


def published_total(client):
    for line in client.get("/metrics").content.decode().splitlines():
        if line.startswith("dashboard_changes_published_total "):
            return float(line.split()[1])
    raise AssertionError("dashboard_changes_published_total missing")


def test_metrics_count_published_changes(client, django_capture_on_commit_callbacks, redis_server, settings):
    """A process without a server (this test) publishes through Redis and counts it."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [redis_server.url]}}}
    channel_layers.backends.clear()
    try:
        before = published_total(client)
        with django_capture_on_commit_callbacks(execute=True):
            Task.objects.bulk_create([Task(title=f"t{i}") for i in range(3)])
        assert published_total(client) == before + 3
    finally:
        channel_layers.backends.clear()

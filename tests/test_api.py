"""The agent and operator API: every endpoint, every error, and that writes are sequenced."""
import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from realtime.models import Stream
from tasks import tokens
from tasks import domain
from tasks.models import Agent, AgentToken, Task
from tests.support.api import bearer_client, fresh_throttles, op  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    a = Agent(name="worker-1", status=Agent.Status.OFFLINE)
    a.save()
    return a


@pytest.fixture
def token(agent):
    return tokens.issue(agent, "test")[1]


@pytest.fixture
def bot(agent, token):
    """An API client authenticated as `agent`."""
    return bearer_client(agent, token)


@pytest.fixture
def other_bot():
    other = Agent(name="worker-2")
    other.save()
    return bearer_client(other)


def make_task(title="job", **fields):
    task = Task(title=title, **fields)
    task.save()
    return task


def running_on(agent, **fields):
    return make_task(status="running", agent=agent, **fields)


# Authentication and permissions ----------------------------------------------------------

AGENT_ENDPOINTS = [
    ("post", "/api/agent/register/"), ("post", "/api/agent/heartbeat/"), ("get", "/api/agent/me/"),
    ("post", "/api/agent/claim/"), ("get", "/api/agent/tasks/1/"), ("patch", "/api/agent/tasks/1/"),
    ("post", "/api/agent/tasks/1/claim/"),
]
OPERATOR_ENDPOINTS = [
    ("get", "/api/tasks/"), ("post", "/api/tasks/"), ("get", "/api/tasks/1/"), ("patch", "/api/tasks/1/"),
    ("post", "/api/tasks/1/cancel/"), ("post", "/api/tasks/1/requeue/"), ("post", "/api/tasks/1/fail/"),
    ("get", "/api/agents/"), ("get", "/api/agents/1/"),
]


@pytest.mark.parametrize("method,url", AGENT_ENDPOINTS)
def test_agent_endpoints_need_a_token(method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in response.json()["detail"]


@pytest.mark.parametrize("header", [
    "Bearer fa_000000000000.not-the-secret", "Bearer nonsense", "Bearer", "Bearer a b", "Token abc",
])
def test_wrong_or_malformed_tokens_are_401(header, token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post("/api/agent/heartbeat/", {}, format="json")
    # "Token abc" is not a bearer token at all: no credentials, same 401
    assert response.status_code == 401, response.content


def test_a_token_with_a_right_prefix_but_wrong_secret_is_401(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token[:-3]}xyz")
    assert client.post("/api/agent/heartbeat/", {}, format="json").status_code == 401


def test_revoked_token_is_401(bot, agent):
    assert bot.get("/api/agent/me/").status_code == 200
    call_command("revoke_agent_token", agent=agent.name)
    response = bot.get("/api/agent/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_token_is_stored_hashed_and_records_use(token, agent):
    row = AgentToken.objects.get(agent=agent)
    assert token not in (row.key_hash, row.prefix) and row.key_hash == tokens.digest(token)
    assert row.last_used_at is None
    assert tokens.authenticate(token).pk == row.pk
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_a_staff_session_is_not_an_agent(op):
    assert op.post("/api/agent/claim/").status_code == 401


@pytest.mark.parametrize("method,url", OPERATOR_ENDPOINTS)
def test_operator_endpoints_refuse_anonymous_and_agents(method, url, bot):
    assert getattr(APIClient(), method)(url, {}, format="json").status_code == 403
    response = getattr(bot, method)(url, {}, format="json")
    assert response.status_code == 403
    assert "operators" in response.json()["detail"]


def test_operators_need_staff_and_the_model_permission(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x-pass-123456")
    client = APIClient()
    client.force_login(user)
    user.user_permissions.add(Permission.objects.get(codename="view_task"))
    assert client.get("/api/tasks/").status_code == 403  # not staff
    user.is_staff = True
    user.save()
    assert client.get("/api/tasks/").status_code == 200
    assert client.post("/api/tasks/", {"title": "x"}, format="json").status_code == 403  # no add_task
    task = make_task()
    assert client.post(f"/api/tasks/{task.pk}/cancel/").status_code == 403  # no change_task
    assert client.get("/api/agents/").status_code == 403  # no view_agent
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_task", "change_task"]))
    user = django_user_model.objects.get(pk=user.pk)  # drop the permission cache
    client.force_login(user)
    assert client.post("/api/tasks/", {"title": "x"}, format="json").status_code == 201
    assert client.post(f"/api/tasks/{task.pk}/cancel/").status_code == 200


def test_session_writes_need_csrf(staff_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.get("/api/tasks/").status_code == 200
    response = client.post("/api/tasks/", {"title": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


# Agents ----------------------------------------------------------------------------------

def test_register_brings_an_offline_agent_online(bot, agent, settings):
    settings.AGENT_OFFLINE_AFTER = 30
    response = bot.post("/api/agent/register/", {"hostname": "box-1"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "idle" and body["hostname"] == "box-1" and body["current_task"] is None
    assert body["heartbeat_every"] == 10 and body["offline_after"] == 30
    agent.refresh_from_db()
    assert agent.status == "idle" and agent.last_heartbeat is not None


def test_register_rejects_a_hostname_too_long(bot):
    response = bot.post("/api/agent/register/", {"hostname": "x" * 300}, format="json")
    assert response.status_code == 400 and "hostname" in response.json()


def test_heartbeat_marks_busy_when_running_and_refreshes(bot, agent):
    task = running_on(agent)
    response = bot.post("/api/agent/heartbeat/", format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "busy" and response.json()["current_task"] == task.pk
    first = Agent.objects.get(pk=agent.pk).last_heartbeat
    assert bot.post("/api/agent/heartbeat/", {}, format="json").status_code == 200
    assert Agent.objects.get(pk=agent.pk).last_heartbeat > first


def test_me_shows_the_agent_without_writing(bot, agent):
    version = agent.version
    response = bot.get("/api/agent/me/")
    assert response.status_code == 200 and response.json()["name"] == agent.name
    assert Agent.objects.get(pk=agent.pk).version == version


def test_claim_gives_the_oldest_queued_task(bot, agent):
    first, second = make_task("first"), make_task("second")
    make_task("done", status="succeeded", progress=100)
    response = bot.post("/api/agent/claim/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == first.pk and body["status"] == "running" and body["agent"] == agent.pk
    assert body["agent_name"] == agent.name and body["started_at"]
    assert Agent.objects.get(pk=agent.pk).status == "busy"
    assert Task.objects.get(pk=second.pk).status == "queued"


def test_claim_on_an_empty_queue_is_204(bot):
    make_task("done", status="succeeded", progress=100)
    response = bot.post("/api/agent/claim/")
    assert response.status_code == 204 and not response.content


def test_claim_while_running_a_task_is_409_with_the_task(bot, agent):
    current = running_on(agent)
    make_task()
    response = bot.post("/api/agent/claim/")
    assert response.status_code == 409
    assert response.json()["current_task"] == current.pk and "already running" in response.json()["detail"]


def test_claim_a_particular_task(bot, other_bot, agent):
    task = make_task()
    assert bot.post(f"/api/agent/tasks/{task.pk}/claim/").json()["agent"] == agent.pk
    response = other_bot.post(f"/api/agent/tasks/{task.pk}/claim/")
    assert response.status_code == 409 and "not queued" in response.json()["detail"]
    assert other_bot.post("/api/agent/tasks/999999/claim/").status_code == 404


def test_progress_report(bot, agent):
    task = running_on(agent)
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"progress": 40}, format="json")
    assert response.status_code == 200 and response.json()["progress"] == 40
    assert Task.objects.get(pk=task.pk).progress == 40


@pytest.mark.parametrize("body,field", [
    ({"progress": 140}, "progress"),
    ({"progress": -1}, "progress"),
    ({"progress": "lots"}, "progress"),
    ({"progress": None}, "progress"),
    ({"status": "exploded"}, "status"),
    ({"status": "cancelled"}, "status"),  # agents cannot cancel; operators do
    ({"status": "failed"}, "error"),
    ({"status": "failed", "error": ""}, "error"),
    ({"error": "boom"}, "error"),
    ({"status": "succeeded", "progress": 50}, "progress"),
    ({}, "non_field_errors"),
    ({"error": "x" * 10001, "status": "failed"}, "error"),
])
def test_invalid_reports_are_400_with_the_field(bot, agent, body, field):
    task = running_on(agent, progress=10)
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Task.objects.get(pk=task.pk).progress == 10


def test_malformed_json_and_other_media_types(bot, agent):
    task = running_on(agent)
    response = bot.generic("PATCH", f"/api/agent/tasks/{task.pk}/", "{not json", content_type="application/json")
    assert response.status_code == 400
    response = bot.generic("PATCH", f"/api/agent/tasks/{task.pk}/", "progress=5", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    response = bot.generic("PATCH", f"/api/agent/tasks/{task.pk}/", "[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_succeeded_sets_100_and_frees_the_agent(bot, agent):
    task = running_on(agent, progress=70)
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"status": "succeeded"}, format="json")
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.status, task.progress) == ("succeeded", 100) and task.finished_at is not None
    assert Agent.objects.get(pk=agent.pk).status == "idle"


def test_failed_records_the_error(bot, agent):
    task = running_on(agent)
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"status": "failed", "error": "disk full", "progress": 30}, format="json")
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.status, task.error, task.progress) == ("failed", "disk full", 30)
    assert Agent.objects.get(pk=agent.pk).status == "idle"


@pytest.mark.parametrize("final", ["cancelled", "succeeded", "failed"])
def test_reporting_on_a_finished_task_is_409(bot, agent, final):
    # A well-formed report the task's current status forbids: a conflict, not a bad request.
    task = make_task(status=final, agent=agent, progress=100 if final == "succeeded" else 0)
    for body in ({"status": "succeeded"}, {"progress": 50}, {"status": "failed", "error": "late"}):
        response = bot.patch(f"/api/agent/tasks/{task.pk}/", body, format="json")
        assert response.status_code == 409, response.content
        assert final in response.json()["detail"]


def test_agents_may_only_touch_their_own_tasks(bot, other_bot, agent):
    mine = running_on(agent)
    queued = make_task()
    for client, task in ((other_bot, mine), (bot, queued)):
        assert client.get(f"/api/agent/tasks/{task.pk}/").status_code == 403
        response = client.patch(f"/api/agent/tasks/{task.pk}/", {"progress": 5}, format="json")
        assert response.status_code == 403 and "claim another" in response.json()["detail"]
    assert bot.get(f"/api/agent/tasks/{mine.pk}/").status_code == 200
    assert Task.objects.get(pk=mine.pk).progress == 0


@pytest.mark.parametrize("url", ["/api/agent/tasks/987654/", "/api/agent/tasks/99999999999999999999999/"])
def test_unknown_tasks_are_404(bot, url):
    assert bot.get(url).status_code == 404
    assert bot.patch(url, {"progress": 5}, format="json").status_code == 404


def test_a_deleted_agents_token_stops_working(bot, agent):
    agent.delete()
    assert bot.post("/api/agent/heartbeat/", {}, format="json").status_code == 401


# Operators -------------------------------------------------------------------------------

def test_list_filter_and_paginate_tasks(op, agent):
    running = running_on(agent, title="resize images")
    for i in range(5):
        make_task(f"queued {i}")
    body = op.get("/api/tasks/?limit=2").json()
    assert body["count"] == 6 and len(body["results"]) == 2 and body["next"]
    assert op.get("/api/tasks/?status=queued").json()["count"] == 5
    assert [t["id"] for t in op.get(f"/api/tasks/?agent={agent.pk}").json()["results"]] == [running.pk]
    assert op.get("/api/tasks/?search=IMAGES").json()["count"] == 1
    assert op.get("/api/tasks/?offset=99999999999999999999999").json()["results"] == []
    assert len(op.get("/api/tasks/?limit=100000").json()["results"]) == 6


@pytest.mark.parametrize("query,field", [
    ("status=exploded", "status"), ("agent=abc", "agent"), ("agent=0", "agent"), ("agent=99999999999999999999", "agent"),
])
def test_bad_filters_are_400(op, query, field):
    response = op.get(f"/api/tasks/?{query}")
    assert response.status_code == 400 and field in response.json()


def test_create_task(op):
    response = op.post("/api/tasks/", {"title": "Export invoices", "description": "for October"}, format="json")
    assert response.status_code == 201
    task = Task.objects.get(pk=response.json()["id"])
    assert (task.title, task.status, task.description) == ("Export invoices", "queued", "for October")


@pytest.mark.parametrize("body,field", [
    ({}, "title"), ({"title": ""}, "title"), ({"title": "x" * 201}, "title"), ({"title": "a\x00b"}, "title"),
    ({"title": "ok", "status": "running"}, None),  # unknown fields are ignored: status is not settable here
])
def test_create_task_validation(op, body, field):
    response = op.post("/api/tasks/", body, format="json")
    if field is None:
        assert response.status_code == 201 and response.json()["status"] == "queued"
    else:
        assert response.status_code == 400 and field in response.json()


def test_read_and_edit_a_task(op):
    task = make_task("old")
    assert op.get(f"/api/tasks/{task.pk}/").json()["title"] == "old"
    response = op.patch(f"/api/tasks/{task.pk}/", {"title": "new"}, format="json")
    assert response.status_code == 200 and Task.objects.get(pk=task.pk).title == "new"
    assert op.patch(f"/api/tasks/{task.pk}/", {}, format="json").status_code == 400
    assert op.patch(f"/api/tasks/{task.pk}/", {"title": ""}, format="json").status_code == 400
    assert op.get("/api/tasks/424242/").status_code == 404
    assert op.patch("/api/tasks/424242/", {"title": "x"}, format="json").status_code == 404


def test_cancel_a_running_task_frees_its_agent(op, bot, agent):
    task = running_on(agent)
    Agent.objects.filter(pk=agent.pk).update(status="busy")
    response = op.post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Agent.objects.get(pk=agent.pk).status == "idle"
    # the agent learns on its next report, with a 409 that says why
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"progress": 60}, format="json")
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]


def test_cancel_and_requeue_follow_the_transition_table(op, agent):
    done = make_task(status="succeeded", progress=100)
    queued = make_task()
    response = op.post(f"/api/tasks/{done.pk}/cancel/")
    assert response.status_code == 409 and "succeeded" in response.json()["detail"]
    response = op.post(f"/api/tasks/{queued.pk}/requeue/")
    assert response.status_code == 409 and "already queued" in response.json()["detail"]
    assert op.post(f"/api/tasks/{queued.pk}/cancel/").status_code == 200
    assert op.post(f"/api/tasks/{queued.pk}/cancel/").status_code == 409
    failed = make_task(status="failed", agent=agent, progress=40, error="boom")
    response = op.post(f"/api/tasks/{failed.pk}/requeue/")
    assert response.status_code == 200
    failed.refresh_from_db()
    assert (failed.status, failed.agent, failed.progress, failed.error, failed.started_at) == ("queued", None, 0, "", None)
    assert op.post("/api/tasks/777777/cancel/").status_code == 404
    assert op.post("/api/tasks/777777/requeue/").status_code == 404


def test_list_and_read_agents(op, agent, other_bot):
    task = running_on(agent)
    body = op.get("/api/agents/").json()
    assert body["count"] == 2
    by_name = {a["name"]: a for a in body["results"]}
    assert by_name["worker-1"]["current_task"] == task.pk and by_name["worker-2"]["current_task"] is None
    assert [a["name"] for a in op.get("/api/agents/?status=offline").json()["results"]] == ["worker-1"]
    assert op.get("/api/agents/?search=ER-2").json()["count"] == 1
    assert op.get("/api/agents/?status=asleep").status_code == 400
    assert op.get(f"/api/agents/{agent.pk}/").json()["current_task"] == task.pk
    assert op.get("/api/agents/55555/").status_code == 404


# Sequencing, throttling, schema ----------------------------------------------------------

def test_api_writes_are_sequenced_and_published(bot, op, agent, django_capture_on_commit_callbacks):
    head = Stream.objects.get(pk=1).head if Stream.objects.filter(pk=1).exists() else 0
    with django_capture_on_commit_callbacks() as callbacks:
        task_id = op.post("/api/tasks/", {"title": "t"}, format="json").json()["id"]
        bot.post("/api/agent/claim/")
        bot.patch(f"/api/agent/tasks/{task_id}/", {"progress": 50}, format="json")
        bot.patch(f"/api/agent/tasks/{task_id}/", {"status": "succeeded"}, format="json")
    events = [e.wire() for cb in callbacks for e in cb.args[1]]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(head + 1, head + 1 + len(seqs)))  # gapless, in order
    assert Stream.objects.get(pk=1).head == seqs[-1]
    task = Task.objects.get(pk=task_id)
    assert task.version == max(e["seq"] for e in events if e["entity"] == "task")
    assert [e["data"]["status"] for e in events if e["entity"] == "task"] == ["queued", "running", "running", "succeeded"]
    assert {e["entity"] for e in events} == {"task", "agent"}


def test_throttling_answers_429_with_retry_after(bot, op, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"agent": "2/min", "operator": "1/min"}}
    assert [bot.get("/api/agent/me/").status_code for _ in range(3)] == [200, 200, 429]
    response = bot.get("/api/agent/me/")
    assert int(response["Retry-After"]) > 0 and "throttled" in response.json()["detail"].lower()
    assert [op.get("/api/tasks/").status_code for _ in range(2)] == [200, 429]


def test_schema_and_docs_are_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/agent/claim/" in schema["paths"] and "agentToken" in schema["components"]["securitySchemes"]
    assert client.get("/api/docs/").status_code == 200


def test_the_browsable_pages_and_unknown_urls_never_fail(op, bot, agent):
    task = running_on(agent)
    for client, url in ((op, "/api/tasks/"), (op, f"/api/tasks/{task.pk}/"), (op, f"/api/tasks/{task.pk}/cancel/"),
                        (op, "/api/agents/"), (bot, "/api/agent/me/"), (bot, "/api/agent/claim/"),
                        (bot, f"/api/agent/tasks/{task.pk}/")):
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code in (200, 405) and response["Content-Type"] == "application/json"
    response = op.get("/api/tasks")
    assert response.status_code == 404 and "/api/tasks/" in response.json()["detail"]  # the slash hint
    assert op.get("/api/tasks/abc/").json()["detail"].startswith("No API endpoint")


def test_the_transition_table():
    assert domain.allowed("running", "succeeded", domain.AGENT)
    assert not domain.allowed("cancelled", "succeeded", domain.AGENT)
    assert not domain.allowed("running", "cancelled", domain.AGENT)
    assert domain.allowed("running", "cancelled", domain.OPERATOR)
    assert not domain.allowed("succeeded", "queued", domain.OPERATOR)
    assert domain.allowed("running", "queued", domain.SYSTEM)
    finished = {"succeeded", "failed", "cancelled"}
    assert not any(src in finished and dst != "queued" for src, dst in domain.TRANSITIONS)


# Tokens from the command line and the admin ----------------------------------------------

def test_issue_and_revoke_commands(capsys):
    call_command("issue_agent_token", "new-agent", "--create", "--quiet")
    secret = capsys.readouterr().out.strip()
    row = tokens.authenticate(secret)
    assert row.agent.name == "new-agent" and row.agent.status == "offline"
    with pytest.raises(CommandError, match="--create"):
        call_command("issue_agent_token", "nobody")
    with pytest.raises(CommandError, match="No token"):
        call_command("revoke_agent_token", "ffffffffffff")
    call_command("revoke_agent_token", secret)  # a whole token works as well as its prefix
    assert tokens.authenticate(secret) is None
    with pytest.raises(CommandError):
        call_command("revoke_agent_token")


def test_admin_issues_a_token_once_and_revokes(client, staff_user, agent):
    client.force_login(staff_user)
    response = client.post("/admin/tasks/agenttoken/add/", {"agent": agent.pk, "name": "laptop"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    secret = next(part for m in shown for part in m.replace("<", " ").replace(">", " ").split() if part.startswith("fa_"))
    row = tokens.authenticate(secret)
    assert row is not None and row.name == "laptop" and row.agent == agent
    assert secret not in client.get(f"/admin/tasks/agenttoken/{row.pk}/change/").content.decode()
    client.post("/admin/tasks/agenttoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]})
    assert tokens.authenticate(secret) is None

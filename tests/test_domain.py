"""The rules of tasks and agents (tasks/domain.py), and that every interface reaches them: the
admin's change form and actions, the API, the liveness sweep and deletions."""
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from tasks import domain, liveness, tokens
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def change_form(admin, task):
    """GET the task's change form; return its fields as a POST would send them."""
    page = admin.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
    version = re.search(r'name="loaded_version" value="(\d+)"', page).group(1)
    return {"title": task.title, "description": task.description, "status": task.status,
            "progress": task.progress, "agent": task.agent_id or "", "error": task.error, "loaded_version": version}


def form_errors(response):
    return re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)


# The admin's change form -------------------------------------------------------------------------


def test_the_change_form_refuses_a_running_task_without_an_agent(admin):
    task = Task.objects.create(title="t")
    form = change_form(admin, task) | {"status": "running"}
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200 and any("needs an agent" in e for e in form_errors(response))
    assert Task.objects.get(pk=task.pk).status == "queued"


def test_the_change_form_refuses_a_second_running_task_for_one_agent(admin):
    agent = Agent.objects.create(name="a", status="busy")
    Task.objects.create(title="first", status="running", agent=agent)
    second = Task.objects.create(title="second")
    form = change_form(admin, second) | {"status": "running", "agent": agent.pk}
    response = admin.post(f"/admin/tasks/task/{second.pk}/change/", form)
    assert any("already running task" in e for e in form_errors(response))
    assert Task.objects.get(pk=second.pk).status == "queued"


def test_the_change_form_refuses_a_status_change_no_operator_may_make(admin):
    task = Task.objects.create(title="t", status="succeeded", progress=100)
    form = change_form(admin, task) | {"status": "running"}
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert any("cannot become running" in e for e in form_errors(response))


def test_a_stale_edit_is_refused_instead_of_undoing_an_agents_claim(admin):
    """The operator opens the form; an agent claims the task; the operator saves the form he
    loaded (status still "queued"): the claim stands and the form says to reload."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="contested")
    form = change_form(admin, task) | {"title": "renamed"}
    claimed = domain.claim(agent_id=agent.pk)
    assert claimed.pk == task.pk
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200
    assert any("changed while you were editing" in e and "Reload" in e for e in form_errors(response))
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.agent_id, stored.title) == ("running", agent.pk, "contested")


def test_an_edit_that_assigns_a_task_makes_its_agent_busy_and_the_previous_one_idle(admin):
    atlas = Agent.objects.create(name="atlas", status="idle")
    task = Task.objects.create(title="t")
    form = change_form(admin, task) | {"status": "running", "agent": atlas.pk}
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    assert Agent.objects.get(pk=atlas.pk).status == "busy"
    task.refresh_from_db()
    form = change_form(admin, task) | {"status": "cancelled"}
    assert admin.post(f"/admin/tasks/task/{task.pk}/change/", form).status_code == 302
    assert Agent.objects.get(pk=atlas.pk).status == "idle"


# Actions and the API share the rules --------------------------------------------------------------


def test_admin_cancel_and_api_cancel_leave_the_agent_in_the_same_state(admin, staff_user):
    one, two = Agent.objects.create(name="one", status="busy"), Agent.objects.create(name="two", status="busy")
    by_admin = Task.objects.create(title="a", status="running", agent=one)
    by_api = Task.objects.create(title="b", status="running", agent=two)
    admin.post("/admin/tasks/task/", {"action": "cancel_tasks", "_selected_action": [by_admin.pk]})
    assert admin.post(f"/api/tasks/{by_api.pk}/cancel/").status_code == 200
    assert [Agent.objects.get(pk=a.pk).status for a in (one, two)] == ["idle", "idle"]
    assert {Task.objects.get(pk=t.pk).status for t in (by_admin, by_api)} == {"cancelled"}


def test_every_interface_reaches_the_domain(admin, monkeypatch, settings):
    """The admin actions, the API and the liveness sweep call tasks/domain.py, not the models."""
    calls = []
    for name in ("cancel_many", "requeue_many", "take_agents_offline", "claim", "report", "cancel", "requeue", "heartbeat"):
        original = getattr(domain, name)
        monkeypatch.setattr(domain, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    agent = Agent.objects.create(name="bot")
    _, secret = tokens.issue(agent)
    bot = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    task = Task.objects.create(title="t")
    bot.post("/api/agent/heartbeat/", "{}", content_type="application/json")
    bot.post("/api/agent/claim/")
    bot.patch(f"/api/agent/tasks/{task.pk}/", json.dumps({"progress": 5}), content_type="application/json")
    admin.post(f"/api/tasks/{task.pk}/cancel/")
    admin.post(f"/api/tasks/{task.pk}/requeue/")
    admin.post("/admin/tasks/task/", {"action": "cancel_tasks", "_selected_action": [task.pk]})
    admin.post("/admin/tasks/task/", {"action": "requeue_tasks", "_selected_action": [task.pk]})
    admin.post("/admin/tasks/agent/", {"action": "mark_offline", "_selected_action": [agent.pk]})
    settings.AGENT_OFFLINE_AFTER = 1
    Agent.objects.filter(pk=agent.pk).update(status="idle", last_heartbeat=timezone.now() - timezone.timedelta(seconds=5))
    liveness.sweep()
    assert calls == ["heartbeat", "claim", "report", "cancel", "requeue", "cancel_many", "requeue_many",
                     "take_agents_offline", "take_agents_offline"]


# Deletions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy,outcome", [("requeue", "queued"), ("fail", "failed")])
def test_deleting_a_busy_agent_leaves_no_running_task_without_an_agent(settings, policy, outcome):
    settings.AGENT_OFFLINE_TASK_POLICY = policy
    agent = Agent.objects.create(name="doomed", status="busy")
    running = Task.objects.create(title="in flight", status="running", agent=agent, progress=40)
    done = Task.objects.create(title="done", status="succeeded", progress=100, agent=agent)
    agent.delete()
    running.refresh_from_db()
    assert running.status == outcome and running.agent_id is None
    assert "deleted" in running.error if policy == "fail" else running.progress == 0
    assert Task.objects.get(pk=done.pk).agent_id is None
    assert not Task.objects.filter(status="running", agent__isnull=True).exists()


def test_deleting_a_running_task_makes_its_agent_idle():
    agent = Agent.objects.create(name="a", status="busy")
    Task.objects.create(title="t", status="running", agent=agent).delete()
    assert Agent.objects.get(pk=agent.pk).status == "idle"


# "Current task" has one answer -------------------------------------------------------------------


def test_current_task_is_the_same_everywhere(admin):
    """Two running tasks for one agent (only raw writes can make that) with the same start:
    the model, the API list, the API detail, the dashboard and the admin agree."""
    agent = Agent.objects.create(name="a", status="busy")
    now = timezone.now()
    older = Task.objects.create(title="older", status="running", agent=agent)
    newer = Task.objects.create(title="newer", status="running", agent=agent)
    Task.objects.filter(pk__in=[older.pk, newer.pk]).update(started_at=now)
    expected = domain.current_task(agent.pk)
    assert expected.pk == newer.pk  # same start: the newest id
    assert agent.current_task.pk == expected.pk
    assert domain.current_tasks()[agent.pk].pk == expected.pk
    listed = admin.get("/api/agents/").json()["results"]
    assert [a["current_task"] for a in listed if a["id"] == agent.pk] == [expected.pk]
    assert admin.get(f"/api/agents/{agent.pk}/").json()["current_task"] == expected.pk
    page = admin.get("/").content.decode()
    agent_tasks = re.findall(r'<span class="agent-task[^"]*">(.*?)</span>', page, re.S)
    assert agent_tasks == [f'<a href="/admin/tasks/task/{expected.pk}/change/" title="newer">newer</a>']
    changelist = admin.get("/admin/tasks/agent/").content.decode()
    assert f"../task/{expected.pk}/change/" in changelist


# Exactly which events each action publishes -----------------------------------------------------


def test_the_events_of_a_claim_a_report_a_cancel_and_a_requeue():
    from tests.support.capture import capture_published

    agent = Agent.objects.create(name="bot", last_heartbeat=timezone.now())
    task = Task.objects.create(title="t")
    kinds = lambda events: [(e["entity"], e["op"], e["data"].get("status")) for e in events]  # noqa: E731
    with capture_published(expected=2) as events:
        domain.claim(agent_id=agent.pk)
    assert kinds(events) == [("task", "upsert", "running"), ("agent", "upsert", "busy")]
    with capture_published(expected=1) as events:  # the heartbeat is fresh: no agent write
        domain.report(agent_id=agent.pk, task_id=task.pk, progress=50)
    assert events[0]["data"]["progress"] == 50
    with capture_published(expected=2) as events:
        domain.cancel(task_id=task.pk)
    assert kinds(events) == [("task", "upsert", "cancelled"), ("agent", "upsert", "idle")]
    with capture_published(expected=1) as events:
        domain.requeue(task_id=task.pk)
    assert kinds(events) == [("task", "upsert", "queued")]
    with capture_published(expected=0):
        with pytest.raises(domain.InvalidChange):
            domain.requeue(task_id=task.pk)


def test_the_events_of_deleting_a_busy_agent():
    from tests.support.capture import capture_published

    agent = Agent.objects.create(name="doomed", status="busy")
    running = Task.objects.create(title="in flight", status="running", agent=agent)
    with capture_published(expected=2) as events:
        agent.delete()
    assert [(e["entity"], e["op"]) for e in events] == [("task", "upsert"), ("agent", "delete")]
    assert events[0]["data"] == {**events[0]["data"], "id": running.pk, "status": "queued", "agent": None}

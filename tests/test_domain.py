"""The rules of tasks and agents (tasks/domain.py), and that every interface reaches them: the
admin's change form and actions, the API, the liveness sweep and deletions."""
import html
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from tasks import domain, liveness, selectors, tokens
from tasks.models import Agent, Task
from tests.support.forms import form_values

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_client):
    return staff_client


def change_form(admin, task):
    """GET the task's change form; return its fields as the browser would POST them (with the
    values it was loaded with, Django's `initial-<name>` inputs)."""
    return form_values(admin.get(f"/admin/tasks/task/{task.pk}/change/").content.decode())


def agent_form(admin, agent):
    return form_values(admin.get(f"/admin/tasks/agent/{agent.pk}/change/").content.decode())


def form_errors(response):
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    return [html.unescape(e) for e in found]


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


def test_a_title_fix_on_a_form_opened_before_a_claim_keeps_the_claim(admin):
    """The operator opens the form; an agent claims the task; the operator saves the form he
    loaded (status still "queued" in it) with a new title: the title is saved, the claim stands."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="contested")
    form = change_form(admin, task) | {"title": "renamed"}
    claimed = domain.claim(agent_id=agent.pk)
    assert claimed.pk == task.pk
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.agent_id, stored.title) == ("running", agent.pk, "renamed")
    assert Agent.objects.get(pk=agent.pk).status == "busy"


def test_an_edit_of_a_field_that_also_changed_meanwhile_is_refused(admin):
    """The operator cancels a running task; meanwhile its agent reported it succeeded: the
    form says what changed and to reload, and the agent's report stands."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="t")
    domain.claim(agent_id=agent.pk)
    form = change_form(admin, Task.objects.get(pk=task.pk)) | {"status": "cancelled"}
    domain.report(agent_id=agent.pk, task_id=task.pk, status="succeeded")
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200
    [error] = [e for e in form_errors(response) if "changed while you were editing" in e]
    assert "its status is now succeeded (you loaded running)" in error and "Reload" in error
    assert Task.objects.get(pk=task.pk).status == "succeeded"


def test_a_form_without_its_loaded_values_falls_back_to_the_version(admin):
    """A POST that does not say what it loaded (a script, an old page) is checked by version:
    any change since is a conflict."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="contested")
    form = {k: v for k, v in change_form(admin, task).items() if not k.startswith("initial-")} | {"title": "renamed"}
    domain.claim(agent_id=agent.pk)
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert any("changed while you were editing" in e and "you loaded version" in e for e in form_errors(response))
    assert Task.objects.get(pk=task.pk).title == "contested"


# A running task whose agent reports while the operator edits ------------------------------------


@pytest.fixture
def reporting():
    """A running task, claimed by its agent, and a function that reports progress on it."""
    agent = Agent.objects.create(name="bot", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Crunch numbers")
    domain.claim(agent_id=agent.pk)
    domain.report(agent_id=agent.pk, task_id=task.pk, progress=42)

    def tick(progress):
        domain.report(agent_id=agent.pk, task_id=task.pk, progress=progress)

    return Task.objects.get(pk=task.pk), agent, tick


def test_progress_reports_do_not_block_marking_a_running_task_succeeded(admin, reporting):
    task, agent, tick = reporting
    form = change_form(admin, task) | {"status": "succeeded"}
    for progress in (45, 48, 51):
        tick(progress)
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.progress, stored.agent_id) == ("succeeded", 100, agent.pk), "100% follows"
    assert Agent.objects.get(pk=agent.pk).status == "idle"


def test_progress_reports_do_not_block_a_title_fix_nor_are_undone_by_it(admin, reporting):
    task, _, tick = reporting
    form = change_form(admin, task) | {"title": "Crunch the numbers"}
    tick(60)
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.title, stored.status, stored.progress) == ("Crunch the numbers", "running", 60)


def test_marking_a_reporting_task_failed_keeps_its_latest_progress(admin, reporting):
    task, _, tick = reporting
    form = change_form(admin, task) | {"status": "failed", "error": "wrong input file"}
    tick(77)
    assert admin.post(f"/admin/tasks/task/{task.pk}/change/", form).status_code == 302
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.progress, stored.error) == ("failed", 77, "wrong input file")


def test_an_operators_progress_that_a_report_also_changed_is_refused(admin, reporting):
    task, _, tick = reporting
    form = change_form(admin, task) | {"progress": "50"}
    tick(68)
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert any("its progress is now 68% (you loaded 42%)" in e for e in form_errors(response))
    assert Task.objects.get(pk=task.pk).progress == 68


def test_succeeded_with_a_contradicting_progress_says_how_to_fix_it(admin, reporting):
    task, _, tick = reporting
    form = change_form(admin, task) | {"status": "succeeded", "progress": "90"}
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", form)
    [error] = [e for e in form_errors(response) if "100% done" in e]
    assert "set progress to 100, or leave it as it was (it was 42%)" in error
    assert error.count("100% done") == 1, "said once"
    assert Task.objects.get(pk=task.pk).status == "running"


def test_requeueing_in_the_form_clears_the_agent_progress_and_error(admin):
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="t", status="failed", agent=agent, progress=70, error="boom")
    response = admin.post(f"/admin/tasks/task/{task.pk}/change/", change_form(admin, task) | {"status": "queued"})
    assert response.status_code == 302, form_errors(response)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.agent_id, stored.progress, stored.error) == ("queued", None, 0, "")


# The admin's agent form --------------------------------------------------------------------------


def test_a_hostname_fix_on_a_form_opened_before_a_claim_leaves_the_agent_busy(admin):
    agent = Agent.objects.create(name="bot", hostname="old-host", last_heartbeat=timezone.now())
    task = Task.objects.create(title="t")
    form = agent_form(admin, agent) | {"hostname": "rack-7.workers.internal"}
    assert form["status"] == "idle"
    domain.claim(agent_id=agent.pk)
    response = admin.post(f"/admin/tasks/agent/{agent.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.hostname, stored.status) == ("rack-7.workers.internal", "busy")
    assert selectors.current_task(agent.pk).pk == task.pk


@pytest.mark.parametrize("policy,outcome", [("requeue", "queued"), ("fail", "failed")])
def test_setting_an_agent_offline_in_its_form_applies_the_offline_policy(admin, settings, staff_user, policy, outcome):
    settings.AGENT_OFFLINE_TASK_POLICY = policy
    agent = Agent.objects.create(name="bot", last_heartbeat=timezone.now())
    task = Task.objects.create(title="t")
    domain.claim(agent_id=agent.pk)
    response = admin.post(f"/admin/tasks/agent/{agent.pk}/change/", agent_form(admin, agent) | {"status": "offline"})
    assert response.status_code == 302, form_errors(response)
    assert Agent.objects.get(pk=agent.pk).status == "offline"
    stored = Task.objects.get(pk=task.pk)
    assert stored.status == outcome
    if policy == "fail":
        assert stored.error == f"Agent bot went offline (marked offline by {staff_user})."
    else:
        assert (stored.agent_id, stored.progress) == (None, 0)
    assert not Task.objects.filter(status="running", agent=agent).exists()


def test_busy_and_idle_follow_from_the_agents_work_not_from_the_form(admin):
    agent = Agent.objects.create(name="bot", last_heartbeat=timezone.now())
    Task.objects.create(title="t")
    domain.claim(agent_id=agent.pk)
    response = admin.post(f"/admin/tasks/agent/{agent.pk}/change/", agent_form(admin, agent) | {"status": "idle"})
    assert any("follow from an agent's work" in e and "mark it offline" in e for e in form_errors(response))
    assert Agent.objects.get(pk=agent.pk).status == "busy"


def test_an_agent_form_conflicting_with_a_rename_is_refused(admin):
    agent = Agent.objects.create(name="bot")
    form = agent_form(admin, agent) | {"name": "bot-a"}
    Agent.objects.filter(pk=agent.pk).update(name="bot-b")
    response = admin.post(f"/admin/tasks/agent/{agent.pk}/change/", form)
    assert any("its name is now bot-b (you loaded bot)" in e for e in form_errors(response))
    assert Agent.objects.get(pk=agent.pk).name == "bot-b"


# An operator marks a running task failed, with a reason --------------------------------------------


def test_an_operator_marks_a_running_task_failed_with_a_reason():
    agent = Agent.objects.create(name="bot", last_heartbeat=timezone.now())
    task = Task.objects.create(title="t")
    domain.claim(agent_id=agent.pk)
    failed = domain.fail(task_id=task.pk, reason="  The input bucket was deleted.  ")
    assert (failed.status, failed.error) == ("failed", "The input bucket was deleted.")
    assert Agent.objects.get(pk=agent.pk).status == "idle"
    with pytest.raises(domain.InvalidChange, match="is failed"):  # its agent's next report: a 409
        domain.report(agent_id=agent.pk, task_id=task.pk, progress=50)


def test_marking_failed_needs_a_reason_and_a_running_task():
    task = Task.objects.create(title="t")
    with pytest.raises(domain.InvalidChange, match="Say why"):
        domain.fail(task_id=task.pk, reason="   ")
    with pytest.raises(domain.InvalidChange, match="is queued; it cannot become failed"):
        domain.fail(task_id=task.pk, reason="stuck")
    assert Task.objects.get(pk=task.pk).status == "queued"


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
    expected = selectors.current_task(agent.pk)
    assert expected.pk == newer.pk  # same start: the newest id
    assert selectors.current_tasks()[agent.pk].pk == expected.pk
    listed = admin.get("/api/agents/").json()["results"]
    assert [a["current_task"] for a in listed if a["id"] == agent.pk] == [expected.pk]
    assert admin.get(f"/api/agents/{agent.pk}/").json()["current_task"] == expected.pk
    page = admin.get("/").content.decode()
    agent_tasks = re.findall(r'<span class="agent-task[^"]*">(.*?)</span>', page, re.S)
    assert len(agent_tasks) == 1 and agent_tasks[0].startswith(f'<a href="/tasks/{expected.pk}/" title="newer">newer</a>')
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

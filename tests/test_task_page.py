"""The task page on the server (tasks/pages.py, tasks/timeline.py): runs of progress reports
folded into one timeline item, in the rendered page and in the items the live page fetches;
the time zone of the times shown; and the operator's actions (who gets them, and "mark
failed" with a reason)."""
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from realtime import actor
from realtime.models import Change
from tasks import domain
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def user_with(django_user_model, name, *codenames, staff=True):
    user = django_user_model.objects.create_user(name, password=f"pw-{name}-123", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="tasks", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def items(html):
    """[(attributes, text)] of the timeline's items, newest first."""
    found = re.findall(r'<li class="change[^"]*"([^>]*)>(.*?)</li>', html, re.S)
    return [(dict(re.findall(r'(data-[\w-]+)="([^"]*)"', attrs)), re.sub(r"<[^>]+>", "", body)) for attrs, body in found]


def seqs(task, **filters):
    return list(Change.objects.filter(entity="task", object_id=task.pk, **filters).order_by("-seq").values_list("seq", flat=True))


def as_agent(who, **values):
    """An update of the task made by agent `who` (as the agent API names it)."""
    with actor.acting_as("agent", who.pk, who.name):
        Task.objects.filter(pk=values.pop("pk")).update(**values)


@pytest.fixture
def running():
    """A task claimed by bot-1 (as the agent), then eight progress reports 12% → 92%."""
    agent = Agent.objects.create(name="bot-1", status="idle")
    task = Task.objects.create(title="Render the report")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    for progress in (12, 25, 38, 50, 62, 68, 80, 92):
        as_agent(agent, pk=task.pk, progress=progress)
    return task, agent


def test_a_run_of_progress_reports_is_one_line(operator, running):
    task, _ = running
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    shown = items(html)
    stored = seqs(task)
    assert len(shown) == 3  # the run, the claim, the creation
    attrs, text = shown[0]
    assert "Progress 0% → 92%, 8 reports" in text and "by agent bot-1" in text
    assert (int(attrs["data-seq"]), int(attrs["data-first-seq"]), attrs["data-count"]) == (stored[0], stored[7], "8")
    assert "Queued → Running on bot-1" in shown[1][1]
    # The times say their zone: each item's, and the timeline's note.
    assert "UTC" in text and "times in UTC" in html
    assert re.search(r'data-field="created_at"><time[^>]*>[\d-]+ [\d:]+ UTC</time>', html)


def test_another_actor_or_another_field_ends_a_run(operator, running):
    task, agent = running
    Task.objects.filter(pk=task.pk).update(progress=93)  # the system, not the agent
    as_agent(agent, pk=task.pk, progress=94)
    as_agent(agent, pk=task.pk, progress=95, title="Render the big report")
    as_agent(agent, pk=task.pk, progress=96)
    lines = [text for _, text in items(operator.get(f"/tasks/{task.pk}/").content.decode())]
    assert "Progress 95% → 96%" in lines[0] and "reports" not in lines[0]
    assert "Progress 94% → 95%" in lines[1] and "Renamed" in lines[1]
    assert "Progress 93% → 94%" in lines[2] and "by agent" in lines[2]
    assert "Progress 92% → 93%" in lines[3] and "by the system" in lines[3]
    assert "Progress 0% → 92%, 8 reports" in lines[4]


def test_the_live_fetch_extends_the_run_at_the_top_of_the_page(operator, running):
    task, agent = running
    page = items(operator.get(f"/tasks/{task.pk}/").content.decode())
    newest, first = int(page[0][0]["data-seq"]), int(page[0][0]["data-first-seq"])
    as_agent(agent, pk=task.pk, progress=95)
    as_agent(agent, pk=task.pk, progress=99)
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": newest, "run": first}).json()
    assert answer["reset"] is False and answer["replaces"] == newest
    [item] = answer["items"]
    [(attrs, text)] = items(item["html"])
    assert "Progress 0% → 99%, 10 reports" in text
    assert (item["seq"], int(attrs["data-first-seq"])) == (seqs(task)[0], first)
    # A page whose top item is not a run (or that does not say) gets the new run on its own.
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": newest}).json()
    assert "replaces" not in answer
    assert "Progress 92% → 99%, 2 reports" in items(answer["items"][0]["html"])[0][1]
    # A status change does not join the run: a new item on top, the run left as it is.
    top = seqs(task)[0]
    with actor.acting_as("operator", 1, "maria"):
        Task.objects.filter(pk=task.pk).update(status="failed", error="stopped by hand")
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": top, "run": first}).json()
    assert "replaces" not in answer and len(answer["items"]) == 1
    assert "Running → Failed" in items(answer["items"][0]["html"])[0][1]


def test_older_pages_count_items_not_changes(operator):
    task = Task.objects.create(title="t0")
    for i in range(1, 61):  # 60 renames: nothing folds
        Task.objects.filter(pk=task.pk).update(title=f"t{i}")
    agent = Agent.objects.create(name="bot")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    for report in range(300):  # one run of 300 reports: one item
        as_agent(agent, pk=task.pk, progress=report % 100 + 1)
    page = items(operator.get(f"/tasks/{task.pk}/").content.decode())
    assert len(page) == 50 and page[0][0]["data-count"] == "300"
    oldest = int(page[-1][0]["data-seq"])
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"before": oldest}).json()
    assert answer["older"] is False
    assert [i["seq"] for i in answer["items"]] == seqs(task)[349:]
    assert "Created" in items(answer["items"][-1]["html"])[0][1]


# The operator's actions ------------------------------------------------------------------------


def test_an_operator_gets_the_actions_a_viewer_does_not(operator, django_user_model, running):
    task, _ = running
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert 'id="task-actions"' in html and 'id="confirm-dialog"' in html
    for action in ("cancel", "requeue", "fail"):
        assert f'data-action="{action}"' in html
    assert re.search(r'data-action="requeue" hidden>', html), "a running task cannot be requeued"
    for client in (user_with(django_user_model, "viewer", "view_task"),
                   user_with(django_user_model, "nonstaff", "view_task", "change_task", staff=False)):
        page = client.get(f"/tasks/{task.pk}/")
        assert page.status_code == 200
        assert "task-actions" not in page.content.decode() and "confirm-dialog" not in page.content.decode()


def test_marking_failed_with_a_reason(operator, running):
    task, agent = running
    Agent.objects.filter(pk=agent.pk).update(status="busy")
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "The input bucket is gone."})
    assert answer.status_code == 200, answer.content
    stored = Task.objects.get(pk=task.pk)
    assert answer.json() == {"id": task.pk, "status": "failed", "version": stored.version, "error": "The input bucket is gone."}
    assert (stored.status, stored.error) == ("failed", "The input bucket is gone.")
    assert Agent.objects.get(pk=agent.pk).status == "idle"
    change = Change.objects.filter(entity="task", object_id=task.pk).order_by("-seq").first()
    assert (change.actor_kind, change.actor_label) == ("operator", "operator")
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "again"})
    assert answer.status_code == 409 and "is already failed" in answer.json()["detail"]


def test_marking_failed_needs_a_reason_the_permission_and_the_csrf_token(staff_user, django_user_model, running):
    task, _ = running
    before = Task.objects.get(pk=task.pk).version
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post(f"/tasks/{task.pk}/fail", {"reason": "x"}).status_code == 403  # no CSRF token
    operator = Client()
    operator.force_login(staff_user)
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "  "})
    assert answer.status_code == 400 and "Say why" in answer.json()["detail"]
    assert operator.get(f"/tasks/{task.pk}/fail").status_code == 405
    assert operator.post("/tasks/999999/fail", {"reason": "x"}).status_code == 404
    for client in (Client(), user_with(django_user_model, "viewer", "view_task"),
                   user_with(django_user_model, "nonstaff", "view_task", "change_task", staff=False)):
        answer = client.post(f"/tasks/{task.pk}/fail", {"reason": "x"})
        assert answer.status_code == 403 and "permission to change tasks" in answer.json()["detail"]
    assert Task.objects.get(pk=task.pk).version == before


def test_the_domain_closes_only_running_tasks(running):
    task, _ = running
    queued = Task.objects.create(title="waiting")
    with pytest.raises(domain.InvalidChange):
        domain.fail(task_id=queued.pk, reason="x")

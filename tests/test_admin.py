"""The Django admin for tasks and agents, as a signed-in superuser."""
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from realtime.models import Stream
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db

TASKS = reverse("admin:tasks_task_changelist")
AGENTS = reverse("admin:tasks_agent_changelist")
TASK_ADD = reverse("admin:tasks_task_add")


def head():
    stream = Stream.objects.filter(pk=1).first()
    return stream.head if stream else 0


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def admin(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def fleet():
    atlas = Agent.objects.create(name="atlas", hostname="atlas.workers.internal")
    borealis = Agent.objects.create(name="borealis", hostname="borealis.workers.internal", status="offline")
    tasks = {
        "queued": Task.objects.create(title="Resize images batch 12"),
        "running": Task.objects.create(title="Build billing-api on main", status="running", agent=atlas, progress=42),
        "succeeded": Task.objects.create(title="Nightly backup of orders", status="succeeded", progress=100, agent=atlas),
        "failed": Task.objects.create(title="Deploy ledger to staging", status="failed", agent=atlas, error="exit status 137"),
        "cancelled": Task.objects.create(title="Crawl partner feed 7", status="cancelled", agent=borealis),
    }
    Agent.objects.filter(pk=atlas.pk).update(status="busy")
    atlas.refresh_from_db()
    return {"atlas": atlas, "borealis": borealis, **tasks}


def action(client, url, name, objects):
    return client.post(url, {"action": name, "_selected_action": [o.pk for o in objects], "index": 0}, follow=True)


# Pages --------------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_admin_login(client):
    response = client.get(TASKS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_task_changelist_shows_badges_and_progress_bars(admin, fleet):
    response = admin.get(TASKS)
    assert response.status_code == 200
    html = response.content.decode()
    for key in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert fleet[key].title in html
    assert '<span class="dash-badge dash-badge-running">Running</span>' in html
    assert '<span class="dash-badge dash-badge-succeeded">Succeeded</span>' in html
    assert '<progress class="dash-progress" max="100" value="42"></progress> 42%' in html
    assert '<progress class="dash-progress" max="100" value="100"></progress> 100%' in html
    assert response.context["cl"].result_count == 5
    # The styles are classes from a stylesheet, never inline attributes (the CSP allows none).
    assert 'href="/static/admin/dashboard-admin.css"' in html
    assert "style=" not in html and "<style" not in html


def test_task_change_page_renders(admin, fleet):
    response = admin.get(reverse("admin:tasks_task_change", args=[fleet["running"].pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Build billing-api on main" in html
    assert 'name="progress"' in html and 'value="42"' in html


def test_agent_changelist_shows_badge_and_current_task(admin, fleet):
    response = admin.get(AGENTS)
    assert response.status_code == 200
    html = response.content.decode()
    assert ">Busy</span>" in html and ">Offline</span>" in html
    running = fleet["running"]
    assert f'<a href="../task/{running.pk}/change/">Build billing-api on main</a>' in html
    assert "atlas.workers.internal" in html


def test_agent_change_page_renders(admin, fleet):
    response = admin.get(reverse("admin:tasks_agent_change", args=[fleet["atlas"].pk]))
    assert response.status_code == 200
    assert 'value="atlas"' in response.content.decode()


def test_a_hostile_title_is_escaped_in_the_admin(admin, fleet):
    title = "<img src=x onerror=alert(1)>"
    Task.objects.filter(pk=fleet["running"].pk).update(title=title)
    for url in (TASKS, AGENTS):
        html = admin.get(url).content.decode()
        assert title not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


# Search and filters --------------------------------------------------------------------------


def test_task_search_matches_title_and_error(admin, fleet):
    response = admin.get(TASKS, {"q": "billing"})
    assert list(response.context["cl"].result_list) == [fleet["running"]]
    response = admin.get(TASKS, {"q": "137"})
    assert list(response.context["cl"].result_list) == [fleet["failed"]]
    response = admin.get(TASKS, {"q": "no such words"})
    assert list(response.context["cl"].result_list) == []


def test_task_status_filter(admin, fleet):
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        response = admin.get(TASKS, {"status__exact": status})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [fleet[status]], status


def test_task_agent_filter(admin, fleet):
    response = admin.get(TASKS, {"agent__id__exact": fleet["borealis"].pk})
    assert list(response.context["cl"].result_list) == [fleet["cancelled"]]


def test_agent_search_and_status_filter(admin, fleet):
    response = admin.get(AGENTS, {"q": "borealis.workers"})
    assert list(response.context["cl"].result_list) == [fleet["borealis"]]
    response = admin.get(AGENTS, {"status__exact": "busy"})
    assert list(response.context["cl"].result_list) == [fleet["atlas"]]


# Adding and editing --------------------------------------------------------------------------


def task_form(**overrides):
    data = {"title": "Index 500 documents", "description": "", "status": "queued", "progress": "0",
            "agent": "", "error": ""}
    data.update(overrides)
    return data


def test_adding_a_task_through_the_admin_saves_it_and_bumps_the_head(admin):
    start = head()
    response = admin.post(TASK_ADD, task_form(_save="Save"))
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(title="Index 500 documents")
    assert task.version == start + 1 == head()
    assert (task.status, task.progress, task.agent) == ("queued", 0, None)


def test_adding_a_running_task_fills_started_at_and_makes_its_agent_busy(admin, fleet):
    cobalt = Agent.objects.create(name="cobalt")
    response = admin.post(TASK_ADD, task_form(status="running", agent=cobalt.pk, progress="3", _save="Save"))
    assert response.status_code == 302
    task = Task.objects.get(title="Index 500 documents")
    assert task.started_at is not None and task.finished_at is None
    assert (task.progress, Agent.objects.get(pk=cobalt.pk).status) == (3, "busy")


def test_the_add_form_refuses_a_running_task_without_an_agent(admin):
    response = admin.post(TASK_ADD, task_form(status="running", _save="Save"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["agent"] == ["A running task needs an agent: choose the agent that runs it."]
    assert not Task.objects.filter(title="Index 500 documents").exists()


def test_the_add_form_refuses_a_second_running_task_for_a_busy_agent(admin, fleet):
    start = head()
    response = admin.post(TASK_ADD, task_form(status="running", agent=fleet["atlas"].pk, _save="Save"))
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["agent"]
    assert f"already running task {fleet['running'].pk}" in error
    assert not Task.objects.filter(title="Index 500 documents").exists()
    assert head() == start


def test_the_add_form_refuses_an_offline_agent(admin, fleet):
    response = admin.post(TASK_ADD, task_form(status="running", agent=fleet["borealis"].pk, _save="Save"))
    assert "offline" in response.context["adminform"].form.errors["agent"][0]
    assert not Task.objects.filter(title="Index 500 documents").exists()


def test_adding_a_succeeded_task_sets_it_100_percent_done(admin):
    response = admin.post(TASK_ADD, task_form(status="succeeded", _save="Save"))
    assert response.status_code == 302
    assert Task.objects.get(title="Index 500 documents").progress == 100


def test_editing_a_task_through_the_admin_bumps_its_version(admin, fleet):
    task = fleet["running"]
    start = head()
    response = admin.post(reverse("admin:tasks_task_change", args=[task.pk]),
                          task_form(title=task.title, status="running", agent=task.agent_id, progress="77", _save="Save"))
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.progress == 77
    assert task.version == start + 1 == head()


def test_progress_140_re_renders_the_form_with_the_field_error(admin):
    start = head()
    response = admin.post(TASK_ADD, task_form(progress="140", _save="Save"))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["progress"]
    assert "100" in form.errors["progress"][0]
    assert "errorlist" in response.content.decode()
    assert not Task.objects.exists()
    assert head() == start


def test_succeeded_below_100_percent_re_renders_with_the_progress_error(admin):
    response = admin.post(TASK_ADD, task_form(status="succeeded", progress="60", _save="Save"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["progress"] == [
        "A succeeded task is 100% done: set progress to 100, or leave it as it was and it is set to 100 for you."
    ]
    assert not Task.objects.exists()


def test_queued_with_an_agent_re_renders_with_the_agent_error(admin, fleet):
    response = admin.post(TASK_ADD, task_form(agent=fleet["atlas"].pk, _save="Save"))
    assert response.status_code == 200
    assert "agent" in response.context["adminform"].form.errors
    assert not Task.objects.filter(title="Index 500 documents").exists()


def test_timestamps_and_version_are_read_only(admin, fleet):
    url = reverse("admin:tasks_task_change", args=[fleet["succeeded"].pk])
    form = admin.get(url).context["adminform"].form
    for name in ("created_at", "updated_at", "started_at", "finished_at", "version"):
        assert name not in form.fields
    assert {"title", "status", "progress", "agent"} <= set(form.fields)

    agent_form = admin.get(reverse("admin:tasks_agent_change", args=[fleet["atlas"].pk])).context["adminform"].form
    for name in ("last_heartbeat", "created_at", "updated_at", "version"):
        assert name not in agent_form.fields

    # Posting them anyway changes nothing.
    task = fleet["succeeded"]
    before = Task.objects.get(pk=task.pk)
    admin.post(url, task_form(title=task.title, status="succeeded", progress="100", agent=task.agent_id,
                              finished_at="2001-01-01 00:00:00", version="999999", _save="Save"))
    after = Task.objects.get(pk=task.pk)
    assert after.finished_at == before.finished_at
    assert after.version == before.version != 999999, "nothing the form may change changed: no write"


# Actions -------------------------------------------------------------------------------------


def test_cancel_tasks_cancels_only_queued_and_running(admin, fleet):
    chosen = [fleet[k] for k in ("queued", "running", "succeeded", "failed")]
    versions = {t.pk: Task.objects.get(pk=t.pk).version for t in chosen}
    start = head()
    response = action(admin, TASKS, "cancel_tasks", chosen)
    assert response.status_code == 200
    assert messages_of(response) == ["2 cancelled. 2 already finished, left as they were."]
    statuses = {t.pk: Task.objects.get(pk=t.pk) for t in chosen}
    assert statuses[fleet["queued"].pk].status == "cancelled"
    assert statuses[fleet["running"].pk].status == "cancelled"
    assert statuses[fleet["running"].pk].finished_at is not None
    assert statuses[fleet["succeeded"].pk].status == "succeeded"
    assert statuses[fleet["failed"].pk].status == "failed"
    assert statuses[fleet["succeeded"].pk].version == versions[fleet["succeeded"].pk]
    assert statuses[fleet["failed"].pk].version == versions[fleet["failed"].pk]
    # Like the API's cancel (tasks/domain.py): the agent that ran the cancelled task is idle.
    assert Agent.objects.get(pk=fleet["atlas"].pk).status == "idle"
    assert head() == start + 3


def test_requeue_tasks_requeues_only_failed_and_cancelled(admin, fleet):
    chosen = [fleet[k] for k in ("running", "failed", "cancelled")]
    start = head()
    response = action(admin, TASKS, "requeue_tasks", chosen)
    assert messages_of(response) == ["2 requeued. 1 not failed or cancelled, left as they were."]
    for key in ("failed", "cancelled"):
        task = Task.objects.get(pk=fleet[key].pk)
        assert (task.status, task.progress, task.agent_id, task.error) == ("queued", 0, None, "")
        assert (task.started_at, task.finished_at) == (None, None)
    running = Task.objects.get(pk=fleet["running"].pk)
    assert (running.status, running.progress) == ("running", 42)
    assert head() == start + 2


def test_requeue_with_nothing_eligible_warns(admin, fleet):
    start = head()
    response = action(admin, TASKS, "requeue_tasks", [fleet["queued"]])
    [message] = list(get_messages(response.wsgi_request))
    assert str(message) == "0 requeued. 1 not failed or cancelled, left as they were."
    assert message.level_tag == "warning"
    assert head() == start


def test_mark_offline_marks_only_online_agents_and_requeues_their_work(admin, fleet):
    idle = Agent.objects.create(name="cobalt")
    offline_version = Agent.objects.get(pk=fleet["borealis"].pk).version
    start = head()
    response = action(admin, AGENTS, "mark_offline", [fleet["atlas"], fleet["borealis"], idle])
    assert messages_of(response) == ["2 agents marked offline. 1 running tasks requeued, 0 failed."]
    assert set(Agent.objects.values_list("status", flat=True)) == {"offline"}
    assert Agent.objects.get(pk=fleet["borealis"].pk).version == offline_version
    running = Task.objects.get(pk=fleet["running"].pk)
    assert (running.status, running.agent_id, running.progress) == ("queued", None, 0)
    assert head() == start + 3


def test_mark_offline_fails_running_work_under_the_fail_policy(admin, fleet, settings):
    settings.AGENT_OFFLINE_TASK_POLICY = "fail"
    action(admin, AGENTS, "mark_offline", [fleet["atlas"]])
    running = Task.objects.get(pk=fleet["running"].pk)
    assert running.status == "failed" and "marked offline by" in running.error


def test_mark_offline_singular_message(admin, fleet):
    idle = Agent.objects.create(name="cobalt")
    response = action(admin, AGENTS, "mark_offline", [idle])
    assert messages_of(response) == ["1 agent marked offline."]


def test_deleting_an_agent_through_the_admin_detaches_its_tasks(admin, fleet):
    atlas = fleet["atlas"]
    response = admin.post(reverse("admin:tasks_agent_delete", args=[atlas.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Agent.objects.filter(pk=atlas.pk).exists()
    assert Task.objects.get(pk=fleet["running"].pk).agent is None


# Permissions on actions ------------------------------------------------------------------------

TOKENS = reverse("admin:tasks_agenttoken_changelist")
ACTIONS = {TASKS: ("cancel_tasks", "requeue_tasks", "delete_selected"),
           AGENTS: ("mark_offline", "delete_selected"),
           TOKENS: ("revoke_tokens", "delete_selected")}


def staff_with(django_user_model, name, *codenames):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name, password="pw-" + name + "-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="tasks", codename__in=codenames))
    return user


@pytest.fixture
def viewer(client, django_user_model):
    """A real staff user who may only look: tasks.view_task, view_agent and view_agenttoken."""
    user = staff_with(django_user_model, "viewer", "view_task", "view_agent", "view_agenttoken")
    assert user.has_perm("tasks.view_task") and not user.has_perm("tasks.change_task")
    client.force_login(user)
    return client


@pytest.fixture
def token():
    from tasks import tokens

    row, _ = tokens.issue(Agent.objects.get(name="atlas"), name="atlas host")
    return row


def offered_actions(response):
    form = response.context.get("action_form")
    return [] if form is None else [value for value, _ in form.fields["action"].choices if value]


def snapshot():
    from tasks.models import AgentToken

    return (head(), sorted(Task.objects.values_list("id", "status", "progress", "agent_id", "version")),
            sorted(Agent.objects.values_list("id", "status", "version")),
            sorted(AgentToken.objects.values_list("id", "revoked_at")))


def test_a_view_only_staff_user_sees_the_lists_but_no_action(viewer, fleet, token):
    for url, names in ACTIONS.items():
        response = viewer.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert offered_actions(response) == [], url
        assert 'name="action"' not in html, url
        for name in names:
            assert f'value="{name}"' not in html, (url, name)
    assert fleet["running"].title in viewer.get(TASKS).content.decode()
    page = viewer.get(reverse("admin:tasks_task_change", args=[fleet["running"].pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # read-only form


def test_a_forged_action_post_from_a_view_only_user_changes_nothing(viewer, fleet, token):
    before = snapshot()
    forged = [
        (TASKS, "cancel_tasks", [fleet["queued"], fleet["running"]]),
        (TASKS, "requeue_tasks", [fleet["failed"], fleet["cancelled"]]),
        (TASKS, "delete_selected", [fleet["succeeded"]]),
        (AGENTS, "mark_offline", [fleet["atlas"]]),
        (AGENTS, "delete_selected", [fleet["borealis"]]),
        (TOKENS, "revoke_tokens", [token]),
        (TOKENS, "delete_selected", [token]),
    ]
    for url, name, objects in forged:
        response = action(viewer, url, name, objects)
        assert response.status_code in (200, 403), (name, response.status_code)
        assert not any("cancelled." in m or "requeued." in m or "marked offline" in m or "revoked" in m
                       for m in messages_of(response)), name
        # The confirmation step of a delete, posted directly, is refused as well.
        viewer.post(url, {"action": name, "_selected_action": [o.pk for o in objects], "post": "yes"})
    assert snapshot() == before


def test_a_user_who_may_change_but_not_delete_gets_the_actions_but_not_delete(client, django_user_model, fleet):
    user = staff_with(django_user_model, "editor", "view_task", "change_task", "view_agent", "change_agent")
    client.force_login(user)
    assert offered_actions(client.get(TASKS)) == ["cancel_tasks", "requeue_tasks"]
    assert offered_actions(client.get(AGENTS)) == ["mark_offline"]
    response = action(client, TASKS, "cancel_tasks", [fleet["queued"]])
    assert messages_of(response) == ["1 cancelled."]
    before = Task.objects.count()
    action(client, TASKS, "delete_selected", [fleet["succeeded"]])
    client.post(TASKS, {"action": "delete_selected", "_selected_action": [fleet["succeeded"].pk], "post": "yes"})
    assert Task.objects.count() == before


def test_a_superuser_is_offered_every_action(admin, fleet, token):
    assert offered_actions(admin.get(TASKS)) == ["delete_selected", "cancel_tasks", "requeue_tasks"]
    assert offered_actions(admin.get(AGENTS)) == ["delete_selected", "mark_offline"]
    assert offered_actions(admin.get(TOKENS)) == ["delete_selected", "revoke_tokens"]

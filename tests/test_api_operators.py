"""Operator API: failing a running task with a reason, and the task list with a dashboard's
filters (several statuses, an agent, `q`) and keyset paging (`before`), which must mean
exactly what a dashboard's view means (tasks/windows.py)."""
import pytest
import requests
from rest_framework.test import APIClient

from realtime import registry
from realtime.models import Change
from tasks.models import Agent, Task
from tests.support.api import fresh_throttles, op  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

CSRF = "c" * 32


def make(title="job", **fields):
    task = Task(title=title, **fields)
    task.save()
    return task


# POST /api/tasks/{id}/fail/ ---------------------------------------------------------------------


def test_failing_a_running_task_records_the_reason_and_frees_its_agent(op):
    agent = Agent(name="worker", status=Agent.Status.BUSY)
    agent.save()
    task = make(status="running", agent=agent, progress=40)
    response = op.post(f"/api/tasks/{task.pk}/fail/", {"reason": "  stuck on a dead NFS mount  "}, format="json")
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert (body["id"], body["status"], body["error"], body["progress"]) == (task.pk, "failed", "stuck on a dead NFS mount", 40)
    task.refresh_from_db()
    assert (task.status, task.error) == ("failed", "stuck on a dead NFS mount") and task.finished_at is not None
    assert Agent.objects.get(pk=agent.pk).status == Agent.Status.IDLE
    change = Change.objects.filter(entity="task", object_id=task.pk).order_by("-seq").first()
    assert change.actor_kind == "operator"


@pytest.mark.parametrize("body", [{"reason": ""}, {"reason": "   "}, {}, {"reason": 7}, {"reason": "a\x00b"},
                                  {"reason": "x" * 10_001}])
def test_failing_needs_a_reason(op, body):
    task = make(status="running")
    response = op.post(f"/api/tasks/{task.pk}/fail/", body, format="json")
    assert response.status_code == 400 and "reason" in response.json(), response.content[:300]
    assert Task.objects.get(pk=task.pk).status == "running"


def test_failing_an_unknown_task_is_404(op):
    response = op.post("/api/tasks/987654/fail/", {"reason": "gone"}, format="json")
    assert response.status_code == 404 and "987654" in response.json()["detail"]


@pytest.mark.parametrize("status", ["queued", "succeeded", "failed", "cancelled"])
def test_failing_a_task_that_is_not_running_is_409(op, status):
    task = make(status=status, progress=100 if status == "succeeded" else 0)
    response = op.post(f"/api/tasks/{task.pk}/fail/", {"reason": "why not"}, format="json")
    assert response.status_code == 409 and status in response.json()["detail"], response.content[:300]
    assert Task.objects.get(pk=task.pk).status == status


def test_failing_needs_the_change_permission(django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x-pass-123456", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_task", "add_task"]))
    client = APIClient()
    client.force_login(user)
    task = make(status="running")
    assert client.post(f"/api/tasks/{task.pk}/fail/", {"reason": "r"}, format="json").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert client.post(f"/api/tasks/{task.pk}/fail/", {"reason": "r"}, format="json").status_code == 200


# GET /api/tasks/ with a dashboard's filters ------------------------------------------------------


TITLES = ["Build été", "BUILD ÉTÉ", "build ete", "Résumé export", "RÉSUMÉ EXPORT", "Export invoices",
          "export INVOICES (EU)", "ünïcode Straße", "UNICODE STRASSE", "100% done", "under_score", "plain"]
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]


@pytest.fixture
def fleet():
    agents = [Agent(name=f"a{i}") for i in range(3)]
    for agent in agents:
        agent.save()
    tasks = []
    for i in range(60):
        status = STATUSES[i % 5]
        tasks.append(make(TITLES[i % len(TITLES)] + f" #{i}", status=status,
                          agent=None if status == "queued" else agents[i % 3],
                          progress=100 if status == "succeeded" else 0))
    return agents, tasks


def dashboard_ids(raw_view, before=None):
    """The ids a dashboard with this view holds (all of them, not just a window), newest first."""
    entity = registry.windowed()
    view = entity.views.parse(raw_view, entity.watched)
    return [row.pk for row in entity.views.newest(view, 10_000, below=before)]


def api_ids(op, query):
    response = op.get(f"/api/tasks/?limit=500&{query}")
    assert response.status_code == 200, (query, response.content[:300])
    body = response.json()
    assert body["count"] == len(body["results"]), query
    return [row["id"] for row in body["results"]]


@pytest.mark.parametrize("query, view", [
    ("status=queued&status=failed", {"status": ["queued", "failed"]}),
    ("status=queued,failed", {"status": ["queued", "failed"]}),
    ("status=running", {"status": ["running"]}),
    ("q=build", {"q": "build"}),
    ("q=%C3%A9t%C3%A9", {"q": "été"}),  # é is not A-Z: it matches only itself
    ("q=%C3%89T%C3%89", {"q": "ÉTÉ"}),
    ("q=STRASSE", {"q": "STRASSE"}),
    ("q=%25", {"q": "%"}),  # LIKE's wildcards match themselves
    ("q=_", {"q": "_"}),
    ("q=++export++", {"q": "  export  "}),
    ("q=", {"q": ""}),
    ("status=failed&q=export", {"status": ["failed"], "q": "export"}),
])
def test_the_list_filters_mean_what_a_dashboards_view_means(op, fleet, query, view):
    assert api_ids(op, query) == dashboard_ids(view)


def test_the_list_filters_by_agent_and_by_id(op, fleet):
    agents, tasks = fleet
    assert api_ids(op, f"agent={agents[1].pk}") == dashboard_ids({"agent": agents[1].pk})
    assert api_ids(op, f"agent={agents[1].pk}&status=running,failed") == \
        dashboard_ids({"agent": agents[1].pk, "status": ["running", "failed"]})
    assert api_ids(op, f"q=%23{tasks[7].pk}") == [tasks[7].pk]
    assert api_ids(op, f"q=%23{tasks[7].pk}&status=queued") == dashboard_ids({"q": f"#{tasks[7].pk}", "status": ["queued"]})


def test_search_still_looks_in_the_title_and_the_description(op, fleet):
    make("quiet title", description="mentions ZEBRA somewhere")
    assert [t["title"] for t in op.get("/api/tasks/?search=zebra").json()["results"]] == ["quiet title"]
    assert op.get("/api/tasks/?search=INVOICES&status=queued").json()["count"] == \
        Task.objects.filter(title__icontains="invoices", status="queued").count()


def test_older_tasks_are_paged_by_keyset_newest_first(op, fleet):
    _, tasks = fleet
    everything = api_ids(op, "")
    assert everything == sorted((t.pk for t in Task.objects.all()), reverse=True)
    seen, before = [], None
    while True:
        page = op.get("/api/tasks/?limit=7" + (f"&before={before}" if before else "")).json()["results"]
        if not page:
            break
        ids = [row["id"] for row in page]
        assert all(before is None or i < before for i in ids)
        seen += ids
        before = ids[-1]
    assert seen == everything
    # With filters: the dashboard's window and what lies past it, in one order.
    view = {"status": ["queued", "failed"], "q": "export"}
    first = dashboard_ids(view)[:3]
    rest = api_ids(op, f"status=queued&status=failed&q=export&before={first[-1]}")
    assert first + rest == dashboard_ids(view)
    assert rest == dashboard_ids(view, before=first[-1])
    # limit and offset go on working beside it.
    assert api_ids(op, f"before={tasks[30].pk}")[5:9] == \
        [r["id"] for r in op.get(f"/api/tasks/?before={tasks[30].pk}&limit=4&offset=5").json()["results"]]


@pytest.mark.parametrize("query, parameter", [
    ("status=exploded", "status"), ("status=queued,exploded", "status"), ("status=queued&status=nope", "status"),
    ("status=", "status"), ("status=queued,", "status"),
    ("agent=0", "agent"), ("agent=abc", "agent"),
    ("q=" + "x" * 201, "q"), ("q=a%00b", "q"),
    ("before=0", "before"), ("before=abc", "before"), ("before=-5", "before"), ("before=99999999999999999999", "before"),
    ("limit=0", "limit"),
])
def test_a_bad_list_parameter_is_a_400_naming_it(op, query, parameter):
    response = op.get(f"/api/tasks/?{query}")
    assert response.status_code == 400, (query, response.content[:300])
    assert parameter in response.json(), (query, response.json())


# Through a real server -------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_fail_and_keyset_paging_through_a_server(daphne, session_cookie, kind):
    agent = Agent(name="worker", status=Agent.Status.BUSY)
    agent.save()
    running = make("render frames", status="running", agent=agent, progress=10)
    for i in range(5):
        make(f"older {i}")
    server = daphne(kind=kind)
    http = requests.Session()
    headers = {"Cookie": f"{session_cookie}; csrftoken={CSRF}", "X-CSRFToken": CSRF}
    response = http.post(f"{server.http}/api/tasks/{running.pk}/fail/", json={"reason": "GPU fell off the bus"},
                         headers=headers, timeout=10)
    assert response.status_code == 200 and response.json()["error"] == "GPU fell off the bus", response.text[:300]
    again = http.post(f"{server.http}/api/tasks/{running.pk}/fail/", json={"reason": "twice"}, headers=headers, timeout=10)
    assert again.status_code == 409, again.text[:300]
    newest = max(Task.objects.values_list("pk", flat=True))
    page = http.get(f"{server.http}/api/tasks/?before={newest}&status=queued,failed&limit=3", headers=headers, timeout=10)
    assert page.status_code == 200, page.text[:300]
    assert [t["id"] for t in page.json()["results"]] == dashboard_ids({"status": ["queued", "failed"]}, before=newest)[:3]

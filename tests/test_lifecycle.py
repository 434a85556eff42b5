"""The task lifecycle is declared once (tasks/lifecycle.py) and everything reads it: the model's
choices and constraints, the domain, the API, the counts, and the pages' scripts, which take
the statuses, labels and actions from the page (static/dashboard/lifecycle.js)."""
import json
import re
from pathlib import Path

import pytest
from django.db.models import Q

from realtime import counts, registry
from tasks import domain, lifecycle
from tasks.api.serializers import AGENT_STATUSES, TASK_STATUSES
from tasks.models import Task
from tests.browser_support import Dashboard, browser, context, server_env  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


def test_the_node_tests_load_the_servers_lifecycle():
    """tests/js/lifecycle.json is what the node tests give the page's modules."""
    assert json.loads((ROOT / "tests/js/lifecycle.json").read_text()) == lifecycle.as_json(), (
        "regenerate tests/js/lifecycle.json from tasks.lifecycle.as_json()")


def test_the_model_the_domain_the_api_and_the_counts_derive_from_it():
    assert Task._meta.get_field("status").choices == lifecycle.CHOICES
    assert list(Task.Status.values) == list(lifecycle.VALUES)
    constraints = {c.name: c.condition for c in Task._meta.constraints}
    assert constraints["task_status_valid"] == Q(status__in=list(lifecycle.VALUES))
    assert domain.TRANSITIONS is lifecycle.TRANSITIONS and domain.allowed is lifecycle.allowed
    assert [s for s, _ in AGENT_STATUSES] == lifecycle.reachable(lifecycle.RUNNING, lifecycle.AGENT)
    assert TASK_STATUSES == list(lifecycle.VALUES)


@pytest.mark.django_db
def test_the_counts_are_kept_for_every_status():
    assert list(counts.read(registry.windowed())[0]) == list(lifecycle.VALUES)


def test_the_actions_apply_to_the_statuses_an_operator_may_move_from():
    actions = lifecycle.as_json()["actions"]
    assert actions["cancel"]["from"] == ["queued", "running"]
    assert actions["requeue"]["from"] == ["failed", "cancelled"]
    assert actions["fail"]["from"] == ["running"]
    for action in actions.values():
        assert all(lifecycle.allowed(s, action["to"], lifecycle.OPERATOR) for s in action["from"])


@pytest.mark.parametrize("status", lifecycle.VALUES)
def test_the_timestamps_follow_the_status(status):
    from datetime import datetime, timezone

    now, earlier = datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)
    spec = lifecycle.BY_VALUE[status]
    started, finished = lifecycle.timestamps(status, None, None, now)
    assert (started is not None) == spec.started and (finished is not None) == spec.finished
    kept = lifecycle.timestamps(status, earlier, earlier, now)
    assert kept[1] == (earlier if spec.finished else None)
    assert kept[0] == (earlier if spec.started or spec.finished else None)


@pytest.mark.django_db
def test_every_page_carries_it(client, staff_user):
    client.force_login(staff_user)
    task = Task.objects.create(title="t")
    for path in ("/", f"/tasks/{task.pk}/"):
        html = client.get(path).content.decode()
        found = re.search(r'<script id="task-lifecycle" type="application/json">(.*?)</script>', html, re.S)
        assert found, path
        assert json.loads(found.group(1)) == lifecycle.as_json(), path


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_reads_its_statuses_from_the_server(daphne, context):
    """A page given another word for a status shows that word: nothing in the browser names
    the statuses itself."""
    Task.objects.create(title="broken one", status="failed", error="x", finished_at=None)
    server = daphne()
    ctx = context(server)
    # Before the page's scripts run, give "failed" another label in the lifecycle the server sent.
    ctx.add_init_script("""
        new MutationObserver((_, observer) => {
            const element = document.getElementById("task-lifecycle");
            if (!element) return;
            element.textContent = element.textContent.replace('"label": "Failed"', '"label": "Broke down"');
            observer.disconnect();
        }).observe(document, {childList: true, subtree: true});
    """)
    board = Dashboard(ctx, server)
    board.wait_open()
    board.page.wait_for_function(
        "() => [...document.querySelectorAll('tr.task .c-status')].some(el => el.textContent.includes('Broke down'))",
        timeout=10_000)

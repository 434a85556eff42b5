"""The throughput chart's numbers (tasks/throughput.py), from the stored history: per-minute
succeeded and failed, the queue depth at the end of each minute, unknown minutes as null."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from realtime.models import Change
from tasks.models import Agent, Task
from tasks.throughput import throughput

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(second=30, microsecond=0)


def at(minutes_ago, **filters):
    """Date the changes matching `filters` `minutes_ago` minutes before NOW."""
    Change.objects.filter(**filters).update(at=NOW - timedelta(minutes=minutes_ago))


def newest_seq():
    return Change.objects.order_by("-seq").values_list("seq", flat=True).first()


def test_counts_and_queue_depth_per_minute_from_the_history():
    agent = Agent.objects.create(name="bot")
    tasks = Task.objects.bulk_create([Task(title=f"t{i}") for i in range(4)])
    at(20)  # the agent and four queued tasks, 20 minutes ago
    mark = newest_seq()
    Task.objects.filter(pk__in=[tasks[0].pk, tasks[1].pk]).update(status="running", agent=agent)
    Task.objects.filter(pk=tasks[0].pk).update(progress=50)  # moves no status: not counted
    Task.objects.filter(pk=tasks[0].pk).update(status="succeeded", progress=100)
    at(10, seq__gt=mark)
    mark = newest_seq()
    Task.objects.filter(pk=tasks[1].pk).update(status="failed", error="boom")
    Task.objects.filter(pk=tasks[2].pk).delete()  # a queued task deleted leaves the queue
    at(3, seq__gt=mark)
    mark = newest_seq()
    Task.objects.create(title="new")
    at(0, seq__gt=mark)

    data = throughput(now=NOW)
    assert len(data["minutes"]) == 60 and data["minutes"][-1] == NOW.replace(second=0).isoformat()
    index = lambda minutes_ago: 59 - minutes_ago  # noqa: E731
    assert data["succeeded"][index(10)] == 1 and data["failed"][index(3)] == 1
    assert sum(data["succeeded"][index(20):]) == 1 and sum(data["failed"][index(20):]) == 1
    assert data["queued"][-1] == Task.objects.filter(status="queued").count() == 2
    assert data["queued"][index(1)] == 1  # before the new task
    assert data["queued"][index(5)] == 2  # after the claims, before the deletion
    assert data["queued"][index(15)] == 4  # before the claims
    # The history starts 20 minutes ago: earlier minutes are unknown, not zero.
    assert data["since"] == (NOW - timedelta(minutes=20)).isoformat()
    assert data["succeeded"][index(21)] is None and data["queued"][index(21)] is None
    assert data["queued"][index(20)] == 4


def test_an_empty_history_is_a_flat_line():
    data = throughput(now=NOW)
    assert data["since"] is None and set(data["succeeded"]) == {0} and set(data["queued"]) == {0}


def test_the_endpoint_needs_the_view_permission_and_answers_304_when_nothing_moved(staff_user, django_user_model):
    Task.objects.create(title="a")
    client = Client()
    assert client.get("/charts/throughput").status_code == 302  # to the sign-in page
    nobody = django_user_model.objects.create_user("nobody")
    client.force_login(nobody)
    assert client.get("/charts/throughput").status_code == 403
    client.force_login(staff_user)
    first = client.get("/charts/throughput")
    assert first.status_code == 200 and first.json()["queued"][-1] == 1
    again = client.get("/charts/throughput", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    Task.objects.filter(title="a").update(progress=10)  # no status moved: the same picture
    assert client.get("/charts/throughput", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    Task.objects.filter(title="a").update(status="cancelled")
    changed = client.get("/charts/throughput", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed.json()["queued"][-1] == 0

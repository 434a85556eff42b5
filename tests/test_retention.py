"""Retention (tasks/retention.py): finished tasks older than TASK_RETENTION_DAYS are deleted in
sequenced batches, with their history, while every open view stays exact."""
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from realtime import counts, registry
from realtime.models import Change, Tombstone
from tasks import retention
from tasks.models import Task
from tests.test_consumer import connect
from tests.test_stream_views import ViewClient, cookie, defined_window, fresh_layer  # noqa: F401


def make(status, days_ago):
    task = Task.objects.create(title=f"{status} {days_ago}d", status="queued")
    if status != "queued":
        Task.objects.filter(pk=task.pk).update(status=status, finished_at=timezone.now() - timedelta(days=days_ago))
    return task.pk


@pytest.mark.django_db
def test_old_finished_tasks_go_with_their_history_and_nothing_else(settings):
    settings.TASK_RETENTION_DAYS = 30
    old = [make(s, 40) for s in ("succeeded", "failed", "cancelled")]
    young = [make("succeeded", 5), make("failed", 29)]
    waiting = make("queued", 0)
    head_before = Task.objects.order_by("-version").first().version
    assert retention.retire(batch=2) == 3
    assert set(Task.objects.values_list("pk", flat=True)) == {*young, waiting}
    assert not Change.objects.filter(entity="task", object_id__in=old).exists()
    assert Change.objects.filter(entity="task", object_id__in=young).exists()
    # Sequenced: each deletion has its number and tombstone, after everything before it.
    assert sorted(Tombstone.objects.filter(object_id__in=old).values_list("seq", flat=True)) == \
        list(range(head_before + 1, head_before + 4))
    found, complete = counts.read(registry.windowed())
    assert complete and found["succeeded"] == 1 and found["failed"] == 1 and found["cancelled"] == 0


@pytest.mark.django_db
def test_retention_zero_keeps_everything(settings):
    settings.TASK_RETENTION_DAYS = 0
    make("succeeded", 4000)
    assert retention.retire() == 0 and retention.run_due_retirement() is None
    assert Task.objects.count() == 1


@pytest.mark.django_db
def test_a_pass_stops_at_its_time_budget_and_the_next_goes_on(settings):
    settings.TASK_RETENTION_DAYS = 1
    for _ in range(5):
        make("succeeded", 3)
    assert retention.retire(batch=2, budget=0) == 0
    assert retention.retire(batch=2) == 5


@pytest.mark.django_db(transaction=True)
async def test_views_stay_exact_while_old_tasks_are_retired(cookie, settings):  # noqa: F811
    settings.TASK_RETENTION_DAYS = 30
    for i in range(30):
        await database_sync_to_async(make)(["succeeded", "failed", "queued"][i % 3], 60 if i < 20 else 1)
    views = [{"limit": 5}, {"status": ["failed"], "limit": 3}, {"status": ["succeeded", "failed"], "limit": 25}]
    clients = []
    for view in views:
        comm, _, _ = await connect(cookie)
        clients.append(ViewClient(comm, view))
        await clients[-1].subscribe()
    retired = await database_sync_to_async(retention.retire)(batch=4)
    assert retired == 14  # the 20 oldest less their 6 queued ones
    for client in clients:
        window, per_status, _, _, head = await database_sync_to_async(defined_window)(client.view)
        await client.pump(head)
        assert {i: r["version"] for i, r in client.tasks.items()} == window
        assert client.counts == per_status
        await client.comm.disconnect()

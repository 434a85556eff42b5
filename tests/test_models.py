"""Task and Agent: database CHECK constraints, model validation, derived timestamps."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from realtime.models import Stream
from tasks.models import Agent, Task
from tasks.selectors import current_task

pytestmark = pytest.mark.django_db


def head():
    stream = Stream.objects.filter(pk=1).first()
    return stream.head if stream else 0


def raises_integrity(write):
    """Run `write` in its own transaction; it must be refused by the database."""
    before = head()
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            write()
    # The refused write gave its sequence number back.
    assert head() == before


@pytest.fixture
def task():
    return Task.objects.create(title="build", progress=10)


@pytest.fixture
def agent():
    return Agent.objects.create(name="atlas")


# Database CHECK constraints ---------------------------------------------------------------


@pytest.mark.parametrize("progress", [101, 140, -1])
def test_database_rejects_progress_outside_0_to_100_through_queryset_update(task, progress):
    raises_integrity(lambda: Task.objects.filter(pk=task.pk).update(progress=progress))
    task.refresh_from_db()
    assert task.progress == 10


def test_database_rejects_progress_140_through_save(task):
    task.progress = 140
    raises_integrity(task.save)
    assert Task.objects.get(pk=task.pk).progress == 10


def test_database_rejects_progress_140_through_bulk_create():
    raises_integrity(lambda: Task.objects.bulk_create([Task(title="ok"), Task(title="bad", progress=140)]))
    assert not Task.objects.exists()


def test_boundaries_0_and_100_are_accepted(task):
    Task.objects.filter(pk=task.pk).update(progress=100)
    assert Task.objects.get(pk=task.pk).progress == 100
    Task.objects.filter(pk=task.pk).update(progress=0)
    assert Task.objects.get(pk=task.pk).progress == 0


def test_database_rejects_an_unknown_task_status(task):
    raises_integrity(lambda: Task.objects.filter(pk=task.pk).update(status="paused"))
    task.status = "paused"
    raises_integrity(task.save)
    assert Task.objects.get(pk=task.pk).status == "queued"


def test_database_rejects_an_unknown_agent_status(agent):
    raises_integrity(lambda: Agent.objects.filter(pk=agent.pk).update(status="sleeping"))
    agent.status = "sleeping"
    raises_integrity(agent.save)
    assert Agent.objects.get(pk=agent.pk).status == "idle"


def test_database_rejects_a_running_task_without_started_at(task):
    raises_integrity(lambda: Task.objects.filter(pk=task.pk).update(status="running", started_at=None))
    assert Task.objects.get(pk=task.pk).status == "queued"


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_database_rejects_a_finished_task_without_finished_at(task, status):
    raises_integrity(
        lambda: Task.objects.filter(pk=task.pk).update(status=status, progress=100, finished_at=None)
    )
    assert Task.objects.get(pk=task.pk).status == "queued"


def test_database_rejects_a_duplicate_agent_name(agent):
    raises_integrity(lambda: Agent.objects.create(name="atlas"))


# Model validation (full_clean) ------------------------------------------------------------


def test_full_clean_names_progress_140():
    with pytest.raises(ValidationError) as info:
        Task(title="t", progress=140).full_clean()
    assert set(info.value.message_dict) == {"progress"}
    assert "100" in info.value.message_dict["progress"][0]


def test_full_clean_requires_100_percent_for_a_succeeded_task():
    now = timezone.now()
    with pytest.raises(ValidationError) as info:
        Task(title="t", status="succeeded", progress=60, started_at=now, finished_at=now).full_clean()
    assert info.value.message_dict == {"progress": ["A succeeded task is 100% done."]}
    Task(title="t", status="succeeded", progress=100, started_at=now, finished_at=now).full_clean()


def test_full_clean_refuses_a_queued_task_with_an_agent(agent):
    with pytest.raises(ValidationError) as info:
        Task(title="t", status="queued", agent=agent).full_clean()
    assert list(info.value.message_dict) == ["agent"]
    assert "queued task has no agent" in info.value.message_dict["agent"][0]


def test_full_clean_refuses_an_unknown_status():
    with pytest.raises(ValidationError) as info:
        Task(title="t", status="paused").full_clean()
    assert "status" in info.value.message_dict


def test_full_clean_accepts_a_valid_queued_task():
    Task(title="t").full_clean()  # raises if anything is wrong


def test_full_clean_accepts_a_new_running_task_that_save_would_complete(agent):
    task = Task(title="t", status="running", agent=agent, progress=5)
    task.full_clean()
    task.save()
    assert task.started_at is not None


# Derived timestamps -----------------------------------------------------------------------


def test_save_fills_started_at_and_finished_at_from_the_status(agent):
    task = Task.objects.create(title="t")
    assert (task.started_at, task.finished_at) == (None, None)

    task.status, task.agent = "running", agent
    task.save()
    task.refresh_from_db()
    started = task.started_at
    assert started is not None and task.finished_at is None
    assert timezone.now() - started < timedelta(seconds=30)

    task.progress = 50
    task.save()
    task.refresh_from_db()
    assert task.started_at == started  # a later save keeps the first start

    task.status, task.progress = "succeeded", 100
    task.save()
    task.refresh_from_db()
    assert task.started_at == started
    assert task.finished_at is not None and task.finished_at >= started


def test_creating_a_finished_task_fills_finished_at():
    task = Task.objects.create(title="t", status="failed", error="boom")
    task.refresh_from_db()
    assert task.finished_at is not None
    assert task.started_at is None


def test_requeue_clears_both_timestamps(agent):
    task = Task.objects.create(title="t", status="running", agent=agent)
    task.status = "failed"
    task.save()
    task.refresh_from_db()
    assert task.started_at and task.finished_at

    task.status, task.agent = "queued", None
    task.save()
    task.refresh_from_db()
    assert (task.started_at, task.finished_at) == (None, None)


def test_running_again_clears_finished_at(agent):
    task = Task.objects.create(title="t", status="running", agent=agent)
    task.status = "failed"
    task.save()
    task.status = "running"
    task.save()
    task.refresh_from_db()
    assert task.started_at is not None
    assert task.finished_at is None


def test_save_with_update_fields_still_writes_the_timestamps(agent):
    task = Task.objects.create(title="t", agent=agent)
    task.status = "running"
    task.save(update_fields=["status"])
    stored = Task.objects.get(pk=task.pk)
    assert stored.status == "running"
    assert stored.started_at is not None
    assert stored.version == task.version


def test_queryset_update_keeps_the_timestamps_consistent(agent):
    task = Task.objects.create(title="t", agent=agent)
    Task.objects.filter(pk=task.pk).update(status="running")
    started = Task.objects.get(pk=task.pk).started_at
    assert started is not None

    Task.objects.filter(pk=task.pk).update(status="succeeded", progress=100)
    stored = Task.objects.get(pk=task.pk)
    assert stored.started_at == started
    assert stored.finished_at is not None

    Task.objects.filter(pk=task.pk).update(status="queued", agent=None)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.started_at, stored.finished_at) == (None, None)


def test_save_sets_updated_at():
    task = Task.objects.create(title="t")
    first = Task.objects.get(pk=task.pk).updated_at
    task.title = "renamed"
    task.save()
    assert Task.objects.get(pk=task.pk).updated_at >= first
    assert task.updated_at == Task.objects.get(pk=task.pk).updated_at


# What an agent runs (tasks/selectors.py) -------------------------------------------------


def test_current_task_is_the_running_task(agent):
    assert current_task(agent.pk) is None
    Task.objects.create(title="waiting")
    Task.objects.create(title="done", status="succeeded", progress=100, agent=agent)
    Task.objects.create(title="broke", status="failed", agent=agent)
    assert current_task(agent.pk) is None

    running = Task.objects.create(title="busy", status="running", agent=agent)
    assert current_task(agent.pk) == running

    running.status, running.progress = "succeeded", 100
    running.save()
    assert current_task(agent.pk) is None


def test_current_task_ignores_other_agents_running_tasks(agent):
    other = Agent.objects.create(name="borealis")
    theirs = Task.objects.create(title="theirs", status="running", agent=other)
    assert current_task(agent.pk) is None
    assert current_task(other.pk) == theirs


def test_current_task_prefers_the_latest_start(agent):
    now = timezone.now()
    Task.objects.create(title="older", status="running", agent=agent, started_at=now - timedelta(minutes=5))
    newer = Task.objects.create(title="newer", status="running", agent=agent, started_at=now)
    assert current_task(agent.pk) == newer


def test_string_forms(agent, task):
    assert str(agent) == "atlas"
    assert str(task) == "build"

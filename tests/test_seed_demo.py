"""The seed_demo management command."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from realtime.models import Stream, Tombstone
from tasks import liveness
from tasks.models import Agent, Task
from tasks.selectors import current_task

pytestmark = pytest.mark.django_db


def seed(*args, **options):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, **options)
    return out.getvalue()


def test_an_empty_database_gets_agents_and_tasks_of_every_status():
    out = seed()  # the defaults, unseeded, as an operator runs it
    assert Agent.objects.count() == 12
    assert Task.objects.count() == 300
    assert "Added 12 agents and 300 tasks." in out
    assert set(Task.objects.values_list("status", flat=True)) == {s.value for s in Task.Status}
    assert {"idle", "busy", "offline"} <= set(Agent.objects.values_list("status", flat=True))


def test_seeded_rows_are_valid_and_consistent():
    seed(seed=3, agents=12, tasks=120)
    for task in Task.objects.all():
        task.full_clean()
        if task.status == "running":
            assert task.agent is not None and task.started_at is not None and task.finished_at is None
        if task.status in Task.FINISHED:
            assert task.finished_at is not None and task.finished_at >= task.started_at
        if task.status == "succeeded":
            assert task.progress == 100
        if task.status == "failed":
            assert task.error
    for agent in Agent.objects.all():
        agent.full_clean()
        # Busy means running something; a running task's agent is busy.
        assert (agent.status == "busy") == (current_task(agent.pk) is not None), agent.name
        assert agent.last_heartbeat is not None


def test_the_seeded_fleet_is_ready_for_the_demo_fleet_to_take_over(settings):
    # The demo fleet adopts these agents a few seconds after seeding (python3 run.py): online
    # agents must still count as alive then, and each running task runs on an online agent
    # that the fleet will carry on with.
    before = timezone.now()
    seed(seed=4, agents=12, tasks=60)
    online = Agent.objects.exclude(status="offline")
    assert online.exists() and Agent.objects.filter(status="offline").exists()
    for agent in online:
        assert (before - agent.last_heartbeat).total_seconds() <= 20 < settings.AGENT_OFFLINE_AFTER / 2
    # Nothing for the sweep to take offline right away, nor a few seconds later.
    assert liveness.sweep(now=before + timedelta(seconds=10)) == {"offline": [], "requeued": [], "failed": []}
    for task in Task.objects.filter(status="running"):
        assert task.agent.status == "busy" and 0 < task.progress < 100


def test_seeding_is_sequenced():
    start = Stream.objects.get().head
    seed(seed=5, agents=6, tasks=50)
    versions = sorted(list(Task.objects.values_list("version", flat=True))
                      + list(Agent.objects.values_list("version", flat=True)))
    head = Stream.objects.get().head
    assert len(versions) == len(set(versions)) == 56
    assert versions[0] > start
    assert versions[-1] == head
    assert not Tombstone.objects.exists()


def test_the_same_seed_gives_the_same_data():
    seed(seed=11, agents=5, tasks=30)
    first = list(Task.objects.order_by("id").values_list("title", "status", "progress"))
    Task.objects.all().delete()
    Agent.objects.all().delete()
    seed(seed=11, agents=5, tasks=30)
    assert list(Task.objects.order_by("id").values_list("title", "status", "progress")) == first


def test_a_second_run_refuses_and_mentions_force():
    seed(seed=1, agents=3, tasks=20)
    with pytest.raises(CommandError, match="--force"):
        seed(seed=2)
    assert Agent.objects.count() == 3 and Task.objects.count() == 20


def test_existing_agents_alone_also_block_a_second_run():
    Agent.objects.create(name="hand-made")
    with pytest.raises(CommandError, match="--force"):
        seed()
    assert Task.objects.count() == 0


def test_if_empty_skips_quietly_when_data_exists():
    seed(seed=1, agents=3, tasks=20)
    head = Stream.objects.get().head
    out = seed("--if-empty")
    assert "already has data" in out
    assert Agent.objects.count() == 3 and Task.objects.count() == 20
    assert Stream.objects.get().head == head


def test_if_empty_seeds_an_empty_database():
    seed("--if-empty", seed=1, agents=3, tasks=20)
    assert Agent.objects.count() == 3 and Task.objects.count() == 20


def test_force_adds_more_with_new_agent_names():
    seed(seed=1)
    seed("--force", seed=2)
    assert Agent.objects.count() == 24
    assert Task.objects.count() == 600
    names = list(Agent.objects.values_list("name", flat=True))
    assert len(names) == len(set(names))


def test_force_can_be_repeated():
    for n in range(3):
        seed("--force", seed=n)
    assert Agent.objects.count() == 36
    assert Task.objects.count() == 900


@pytest.mark.parametrize("options", [{"agents": 0}, {"agents": -1}, {"tasks": -5}, {"agents": 1601}])
def test_bad_sizes_are_refused(options):
    with pytest.raises(CommandError, match="--agents must be"):
        seed(**options)
    assert not Agent.objects.exists()


def test_zero_tasks_is_allowed():
    seed(seed=1, agents=3, tasks=0)
    assert Agent.objects.count() == 3
    # Busy agents still get the task they are running.
    assert Task.objects.filter(status="running").count() == Agent.objects.filter(status="busy").count()

"""Agent liveness: silent agents go offline, their tasks follow the policy, agents come back,
and the sweep runs once per interval however many processes ask."""
import time
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tasks import liveness, selectors, tokens
from tasks.models import Agent, SweepLease, Task
from tests.conftest import database_url_of
from tests.test_api_claims import postgres_database, run_concurrently  # noqa: F401 (a fixture)

NOW = timezone.now()


def make_agent(name, heard_seconds_ago, status="idle"):
    agent = Agent(name=name, status=status, last_heartbeat=NOW - timedelta(seconds=heard_seconds_ago) if heard_seconds_ago is not None else None)
    agent.save()
    return agent


def make_running(agent, title="job", progress=40):
    task = Task(title=title, status="running", agent=agent, progress=progress)
    task.save()
    return task


@pytest.fixture
def short_limits(settings):
    settings.AGENT_OFFLINE_AFTER = 30
    settings.AGENT_SWEEP_INTERVAL = 0.5
    settings.AGENT_OFFLINE_TASK_POLICY = "requeue"
    return settings


@pytest.mark.django_db
def test_silent_agents_go_offline_and_their_tasks_are_requeued(short_limits):
    silent, alive = make_agent("silent", 31, "busy"), make_agent("alive", 5, "busy")
    lost, kept = make_running(silent), make_running(alive)
    versions = (lost.version, silent.version)
    result = liveness.sweep(now=NOW)
    assert result == {"offline": [silent.pk], "requeued": [lost.pk], "failed": []}
    silent.refresh_from_db(), alive.refresh_from_db(), lost.refresh_from_db(), kept.refresh_from_db()
    assert silent.status == "offline" and alive.status == "busy"
    assert (lost.status, lost.agent, lost.progress, lost.started_at) == ("queued", None, 0, None)
    assert kept.status == "running" and kept.agent == alive
    assert lost.version > versions[0] and silent.version > versions[1]  # sequenced like any write
    assert liveness.sweep(now=NOW) == {"offline": [], "requeued": [], "failed": []}  # idempotent


@pytest.mark.django_db
def test_policy_fail_fails_the_task_with_a_reason(short_limits):
    short_limits.AGENT_OFFLINE_TASK_POLICY = "fail"
    silent = make_agent("silent", 100, "busy")
    task = make_running(silent)
    assert liveness.sweep(now=NOW)["failed"] == [task.pk]
    task.refresh_from_db()
    assert task.status == "failed" and task.agent == silent and task.finished_at is not None
    assert "silent went offline" in task.error and "30 s" in task.error


@pytest.mark.django_db
def test_never_heard_from_agents_count_from_their_creation(short_limits):
    old = Agent(name="old", created_at=NOW - timedelta(minutes=5))
    old.save()
    new = Agent(name="new")
    new.save()
    assert liveness.sweep(now=NOW)["offline"] == [old.pk]
    assert Agent.objects.get(pk=new.pk).status == "idle"


@pytest.mark.django_db
def test_an_offline_agent_still_holding_a_task_loses_it(short_limits):
    ghost = make_agent("ghost", 300, "offline")
    task = make_running(ghost)
    result = liveness.sweep(now=NOW)
    assert result == {"offline": [], "requeued": [task.pk], "failed": []}


@pytest.mark.django_db
def test_agents_come_back_idle_or_busy(short_limits):
    idle, busy = make_agent("idle-one", 100), make_agent("busy-one", 100, "busy")
    task = make_running(busy)
    short_limits.AGENT_OFFLINE_TASK_POLICY = "fail"
    liveness.sweep(now=NOW)
    assert set(Agent.objects.values_list("status", flat=True)) == {"offline"}
    running = make_running(busy, "a new task after the outage")  # e.g. assigned in the admin
    for agent, expected in ((idle, "idle"), (busy, "busy")):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.issue(agent)[1]}")
        response = client.post("/api/agent/heartbeat/", {}, format="json")
        assert response.status_code == 200 and response.json()["status"] == expected
    assert selectors.current_task(busy.pk) == running
    assert Task.objects.get(pk=task.pk).status == "failed"


@pytest.mark.django_db
def test_real_time_silence_with_short_settings(settings):
    settings.AGENT_OFFLINE_AFTER = 0.3
    agent = Agent(name="quick")
    agent.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.issue(agent)[1]}")
    client.post("/api/agent/claim/")
    assert liveness.sweep()["offline"] == []
    time.sleep(0.4)
    assert liveness.sweep()["offline"] == [agent.pk]
    assert client.post("/api/agent/heartbeat/", {}, format="json").json()["status"] == "idle"


@pytest.mark.django_db
def test_run_due_sweep_runs_once_per_interval(short_limits):
    make_agent("silent", 100)
    assert liveness.run_due_sweep() == {"offline": [Agent.objects.get().pk], "requeued": [], "failed": []}
    assert liveness.run_due_sweep() is None  # same interval: another process's turn is over too
    time.sleep(0.6)
    assert liveness.run_due_sweep() is not None
    assert SweepLease.objects.get(name=liveness.LEASE_NAME).last_run is not None


@pytest.mark.django_db
def test_a_caller_on_the_interval_never_misses_its_turn(short_limits):
    # The hub calls every AGENT_SWEEP_INTERVAL seconds; a few milliseconds early must still win.
    assert liveness.run_due_sweep() is not None
    time.sleep(0.47)
    assert liveness.run_due_sweep() is not None


@pytest.mark.django_db
def test_sweep_agents_command(short_limits, capsys):
    make_agent("silent", 100)
    call_command("sweep_agents")
    assert "1 agents marked offline" in capsys.readouterr().out


# Exactly once per interval across processes ----------------------------------------------

LEASE_WORKER = """
import json, os, time
from tasks import liveness
start = float(os.environ["START_AT"])
wins = []
while time.time() < start + 1.7:
    if liveness.win_lease("test-lease", interval=0.5):
        wins.append(time.time())
    time.sleep(0.01)
print("RESULT " + json.dumps({"wins": wins}))
"""


def check_lease(database_url):
    results = run_concurrently(database_url, LEASE_WORKER, [{}] * 3)
    wins = sorted(t for r in results for t in r["wins"])
    # 1.7 s of trying with a 0.5 s interval: wins at about 0, 0.5, 1 and 1.5 s (fewer if the
    # machine stalls the workers), never two in one interval
    assert 2 <= len(wins) <= 4, wins
    gaps = [b - a for a, b in zip(wins, wins[1:])]
    assert min(gaps) > 0.45, gaps  # slack: the database clock decides, time.time() records
    assert sum(1 for r in results if r["wins"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_the_lease_elects_one_process_per_interval_on_sqlite():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL variant covers this database")
    check_lease(database_url_of(connection.settings_dict))


@pytest.mark.postgres
def test_the_lease_elects_one_process_per_interval_on_postgresql(postgres_database):
    check_lease(postgres_database)
    with psycopg.connect(postgres_database) as conn:
        assert conn.execute("SELECT count(*) FROM tasks_sweeplease WHERE name = 'test-lease'").fetchone()[0] == 1

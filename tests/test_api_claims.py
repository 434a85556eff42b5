"""Claims from several OS processes at once never give one task to two agents.

Each worker process is a real Django process (`manage.py shell -c`) with its own database
connection, claiming and finishing tasks as fast as it can, all starting at the same instant.
"""
import json
import os
import subprocess
import threading
import uuid
from contextlib import contextmanager

import psycopg
import pytest

from tests.conftest import PYTHON, ROOT, database_url_of

WORKERS = 4
TASKS = 100


def seed():
    """The agents and queued tasks the workers race for."""
    from tasks.models import Agent, Task

    for i in range(WORKERS):
        Agent(name=f"claimer-{i}").save()
    Task.objects.bulk_create([Task(title=f"job {i}") for i in range(TASKS)])


WORKER = """
import json, os
from tasks import domain
from tasks.models import Agent, Task
agent = Agent.objects.get(name=os.environ["CLAIMER"])
contested = Task.objects.order_by("created_at", "id").values_list("pk", flat=True).last()
won_contested = False
try:  # everyone goes for the same task first: one wins, the rest get a 409
    domain.claim(agent_id=agent.pk, task_id=contested)
    domain.report(agent_id=agent.pk, task_id=contested, status="succeeded")
    won_contested = True
except domain.Conflict:
    pass
claimed = [contested] if won_contested else []
while True:
    task = domain.claim(agent_id=agent.pk)
    if task is None:
        break
    claimed.append(task.pk)
    try:
        domain.report(agent_id=agent.pk, task_id=task.pk, progress=50)
        domain.report(agent_id=agent.pk, task_id=task.pk, status="succeeded")
    except domain.DomainError:  # someone else was given our task: the assertions will say so
        pass
print("RESULT " + json.dumps({"agent": agent.pk, "claimed": claimed, "won_contested": won_contested}))
"""


def manage_env(database_url):
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    return env


def run_manage(database_url, *args, timeout=120):
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=manage_env(database_url),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@contextmanager
def migrated_postgres_database(postgres_url):
    """A new, migrated PostgreSQL database for one test (dropped afterwards); yields its URL."""
    name = f"api_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        run_manage(url, "migrate", "-v", "0")
        yield url
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


READY_PRELUDE = """
import os, sys, time
if os.environ.get("SEED_FIRST"):  # one worker seeds while the others start
    from tests.test_api_claims import seed
    seed()
print("READY", flush=True)
sys.stdin.readline()  # the go signal, once every process is ready
os.environ["START_AT"] = str(time.time())
"""


def run_concurrently(database_url, code, envs, timeout=120):
    """Run one `manage.py shell -c code` per env, released together once all have started
    Django; return each one's RESULT line, parsed."""
    procs = [
        subprocess.Popen([PYTHON, "manage.py", "shell", "-c", READY_PRELUDE + code], cwd=ROOT,
                         env=dict(manage_env(database_url), **env), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for env in envs
    ]
    try:
        for proc in procs:
            wait_ready(proc, timeout)
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err[-3000:]
            line = next(line for line in out.splitlines() if line.startswith("RESULT "))
            results.append(json.loads(line[len("RESULT "):]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def wait_ready(proc, timeout):
    """Read a worker's output up to its READY line; fail if it dies or takes `timeout` s."""
    lines = []

    def read():
        while (line := proc.stdout.readline()) and line.strip() != "READY":
            lines.append(line)
        lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"a worker was not ready after {timeout} s: {''.join(lines)[-3000:]}"
    assert lines[-1], f"a worker died before it was ready: {proc.stderr.read()[-3000:]}"


def check_claims(database_url, rows, seed_first=False, spread=True):
    """rows() gives [(task id, status, agent id)] as the database holds them after the run."""
    envs = [{"CLAIMER": f"claimer-{i}"} for i in range(WORKERS)]
    if seed_first:
        envs[0]["SEED_FIRST"] = "1"
    results = run_concurrently(database_url, WORKER, envs)
    claimed = [task for r in results for task in r["claimed"]]
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    assert sum(r["won_contested"] for r in results) == 1
    final = rows()
    assert sorted(claimed) == sorted(task for task, _, _ in final)  # every task, once
    owner = {task: r["agent"] for r in results for task in r["claimed"]}
    assert all(status == "succeeded" and agent == owner[task] for task, status, agent in final)
    if spread:
        assert sum(1 for r in results if r["claimed"]) >= 2, "the run was not concurrent at all"


@pytest.fixture(scope="session")
def postgres_database(postgres_url):
    """One migrated scratch PostgreSQL database shared by this run's multi-process tests."""
    with migrated_postgres_database(postgres_url) as url:
        yield url


@pytest.mark.postgres
def test_concurrent_claims_on_postgresql(postgres_database):
    url = postgres_database

    def rows():
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT id, status, agent_id FROM tasks_task").fetchall()

    check_claims(url, rows, seed_first=True)
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM tasks_task UNION ALL SELECT version FROM tasks_agent").fetchall()
        head = conn.execute("SELECT head FROM realtime_stream").fetchone()[0]
    assert len(versions) == len(set(versions)) and max(v for (v,) in versions) <= head


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_sqlite():
    from django.db import connection

    from tasks.models import Task

    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL variant covers this database")
    seed()
    # SQLite's busy handler lets the process holding the lock take it again and again, so
    # one worker may do all the work; the contested first claim still races all four.
    check_claims(database_url_of(connection.settings_dict), lambda: list(Task.objects.values_list("id", "status", "agent_id")), spread=False)


# The two locks a claim relies on, each pinned on its own -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_claims_by_one_agent_at_once_give_it_one_task():
    """The stream lock is taken before the claim reads anything: two claims of one agent that
    start together cannot both see "no current task" (without it, on PostgreSQL, both would
    take a task and the agent would run two)."""
    import threading

    from django.db import connections, transaction

    from realtime.sequencing import lock_stream
    from tasks import domain
    from tasks.models import Agent, Task

    agent = Agent.objects.create(name="twice")
    Task.objects.bulk_create([Task(title=f"job {i}") for i in range(3)])
    holding, release = threading.Event(), threading.Event()
    results = []

    def hold():
        with transaction.atomic():
            lock_stream()
            holding.set()
            release.wait(10)
        connections.close_all()

    def claim():
        try:
            results.append(domain.claim(agent_id=agent.pk).pk)
        except domain.Conflict as exc:
            results.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    claimers = [threading.Thread(target=claim) for _ in range(2)]
    for thread in claimers:
        thread.start()
    threading.Event().wait(0.5)  # both are now waiting on the held stream lock
    release.set()
    for thread in claimers + [holder]:
        thread.join(20)
    assert len(results) == 2 and sum(isinstance(r, domain.Conflict) for r in results) == 1, results
    assert Task.objects.filter(agent=agent, status="running").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_a_queued_row_another_transaction_has_locked():
    """PostgreSQL: the queued row is taken with SKIP LOCKED, so a claim neither waits for a
    row some other transaction holds nor takes it."""
    import time

    from django.db import connection

    from tasks import domain
    from tasks.models import Agent, Task
    from tests.support.stream_lock import LockHeld

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks (one writer at a time); the PostgreSQL pass runs this")
    agent = Agent.objects.create(name="skipper")
    first, second = Task.objects.create(title="oldest"), Task.objects.create(title="next")
    with LockHeld(lambda: list(Task.objects.select_for_update().filter(pk=first.pk)), "the oldest task's row"):
        started = time.monotonic()
        claimed = domain.claim(agent_id=agent.pk)
        waited = time.monotonic() - started
    assert claimed.pk == second.pk and waited < 5

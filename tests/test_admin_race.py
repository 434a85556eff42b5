"""An operator's admin edit and an agent's claim landing at the same moment (tasks/admin.py).

The change form takes the stream lock before it reads the row and checks the edit, and holds
it through the save (one transaction), so a claim that arrives between the check and the write
waits for the edit and then sees it: neither overwrites the other. Here the admin's save is
paused right after the check while a claim runs in another thread.

On SQLite every write transaction starts with BEGIN IMMEDIATE, which serialises the two even
without the stream lock; on PostgreSQL only the lock does (the PostgreSQL pass of .ci/run is the
one that proves it).
"""
import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client

from tasks import domain
from tasks.admin import TaskAdmin
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # deadline for each step of the race


def _in_thread(results, name, work):
    def run():
        try:
            results[name] = work()
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def _locks_awaited():
    """PostgreSQL: how many sessions of this database wait for a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def _until_claim_waits_or_ends(claim):
    """Let the claim run until it has finished or is seen waiting for the edit's lock."""
    start = time.monotonic()
    while claim.is_alive():
        waited = time.monotonic() - start
        if connection.vendor == "postgresql":
            if _locks_awaited():
                return
            assert waited < WAIT, f"the claim neither finished nor waited for a lock in {WAIT} s"
        elif waited > 1:  # SQLite: it waits in BEGIN IMMEDIATE, which pg_stat_activity cannot show
            return
        time.sleep(0.02)


def race(monkeypatch, staff_user, task, changes, agent):
    """POST the task's change form with `changes`, pause its save after the check, claim
    meanwhile as `agent`, then let the save go on. Returns {"admin": response, "claim": task}."""
    checked, go = threading.Event(), threading.Event()
    save = TaskAdmin.save_model

    def paused_save(self, request, obj, form, change):
        checked.set()
        assert go.wait(WAIT), "the test never let the admin's save go on"
        return save(self, request, obj, form, change)

    monkeypatch.setattr(TaskAdmin, "save_model", paused_save)
    admin = Client()
    admin.force_login(staff_user)
    form = {"title": task.title, "description": task.description, "status": task.status, "progress": task.progress,
            "agent": task.agent_id or "", "error": task.error, "loaded_version": task.version, **changes}
    results = {}
    editing = _in_thread(results, "admin", lambda: admin.post(f"/admin/tasks/task/{task.pk}/change/", form))
    try:
        assert checked.wait(WAIT), f"the admin's form never reached its save: {results.get('admin')}"
        claiming = _in_thread(results, "claim", lambda: domain.claim(agent_id=agent.pk))
        _until_claim_waits_or_ends(claiming)
    finally:
        go.set()
    editing.join(WAIT)
    claiming.join(WAIT)
    assert not editing.is_alive() and not claiming.is_alive(), f"the edit or the claim did not end in {WAIT} s"
    for name, outcome in results.items():
        if isinstance(outcome, BaseException):
            raise AssertionError(f"the {name} failed") from outcome
    response = results["admin"]
    assert response.status_code == 302, response.content.decode()[-2000:]
    return results


def test_a_claim_made_while_an_admin_edit_is_saved_is_not_overwritten(monkeypatch, staff_user):
    """The operator renames a queued task; the claim waits for the rename, then takes the task."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="contested")
    results = race(monkeypatch, staff_user, task, {"title": "renamed"}, agent)
    assert results["claim"] is not None and results["claim"].pk == task.pk
    stored = Task.objects.get(pk=task.pk)
    assert (stored.title, stored.status, stored.agent_id) == ("renamed", "running", agent.pk), \
        "the claim was overwritten by the edit that was checked before it"
    assert Agent.objects.get(pk=agent.pk).status == "busy"


def test_a_claim_made_while_an_admin_cancels_the_task_sees_the_cancel(monkeypatch, staff_user):
    """The operator cancels a queued task; the claim waits for the cancel, then finds the queue
    empty. Had it gone first, the agent would be running a task the database says is cancelled."""
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="contested")
    results = race(monkeypatch, staff_user, task, {"status": "cancelled"}, agent)
    stored = Task.objects.get(pk=task.pk)
    claimed = results["claim"]
    assert claimed is None, (
        f"the claim took task {claimed.pk} while the cancel was being saved, and the row now says "
        f"{stored.status} with agent {stored.agent_id}: the agent runs a task the database has cancelled")
    assert (stored.status, stored.agent_id) == ("cancelled", None)
    assert Agent.objects.get(pk=agent.pk).status == "idle"

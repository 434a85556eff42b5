"""The SQLite backend's in-process write queue (dashboard_site/sqlite/base.py)."""
import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from realtime.snapshot import stream_position
from tasks.models import Task

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the write queue is part of the SQLite backend"),
]


def in_thread(fn):
    """Run fn in its own thread (its own connection), closing that connection after."""
    def run():
        try:
            fn()
        finally:
            connections.close_all()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_concurrent_writers_all_commit_gapless():
    tasks = Task.objects.bulk_create([Task(title=f"t{i}") for i in range(8)])
    _, before = stream_position()
    errors, per_thread = [], 40

    def writer(task_id):
        def work():
            try:
                for i in range(per_thread):
                    with transaction.atomic():
                        task = Task.objects.get(pk=task_id)
                        task.progress = i
                        task.save()
            except Exception as exc:  # reported below, with the thread's error
                errors.append(exc)
        return work

    threads = [in_thread(writer(t.pk)) for t in tasks]
    for thread in threads:
        thread.join(60)
    assert errors == []
    _, after = stream_position()
    assert after - before == 8 * per_thread
    versions = sorted(Task.objects.values_list("version", flat=True))
    assert versions[-1] == after and len(set(versions)) == 8


def test_the_lock_is_free_again_after_a_rollback_and_after_a_close():
    task = Task.objects.create(title="t")
    with pytest.raises(ValueError):
        with transaction.atomic():
            task.progress = 5
            task.save()
            raise ValueError("rolled back")

    def abandon():
        # A thread that dies inside a transaction: its connection closes, the lock frees.
        atomic = transaction.atomic()
        atomic.__enter__()
        Task.objects.filter(pk=task.pk).update(progress=7)
        connections["default"].close()

    in_thread(abandon).join(10)
    done = []
    in_thread(lambda: done.append(Task.objects.filter(pk=task.pk).update(progress=9))).join(10)
    assert done == [1]
    task.refresh_from_db()
    assert task.progress == 9


def test_a_writer_waits_at_most_the_timeout_then_gets_the_usual_error(settings):
    holding, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Task.objects.create(title="held")
            holding.set()
            release.wait(20)

    holder = in_thread(hold)
    assert holding.wait(10)
    other = connections.create_connection("default")
    other.settings_dict = {**other.settings_dict, "OPTIONS": {**other.settings_dict["OPTIONS"], "timeout": 0.3}}
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            other.set_autocommit(True)
            other._start_transaction_under_autocommit()
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
        other.close()
    assert 0.25 <= waited < 5
    assert Task.objects.filter(title="held").count() == 1

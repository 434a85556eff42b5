"""Retention: finished tasks older than TASK_RETENTION_DAYS are deleted, with their history.

A fleet that finishes a task a second adds 2.6 million rows a month. Nothing else removes
them, so `run_due_retirement()` (a periodic job, REALTIME_PERIODIC_JOBS; one process per
interval wins the lease) deletes succeeded, failed and cancelled tasks whose `finished_at` is
older than the limit, oldest first, in batches of RETIRE_BATCH rows, each in a transaction of
its own so that no writer waits long behind it. The deletions are sequenced like any other
(realtime/sequencing.py): every open dashboard's window, counts and resume stay exact. The
changes kept for those tasks' timelines go with them. TASK_RETENTION_DAYS=0 keeps everything.

docs/operations.md ("Retention") says how to size it.
"""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from realtime import metrics
from realtime.actor import SYSTEM, acting_as
from realtime.models import Change

from .liveness import win_lease
from .models import Task

log = logging.getLogger("tasks.retention")

LEASE_NAME = "task-retention"
RETIRE_INTERVAL = 60.0  # seconds between passes (one process per interval)
RETIRE_BATCH = 500  # tasks per transaction
PASS_SECONDS = 10.0  # a pass stops after this long; the next one goes on


def retire(now=None, batch=RETIRE_BATCH, budget=PASS_SECONDS):
    """Delete finished tasks older than TASK_RETENTION_DAYS, a batch at a time, for at most
    `budget` seconds. Returns how many were deleted."""
    days = settings.TASK_RETENTION_DAYS
    if not days:
        return 0
    horizon = (now or timezone.now()) - timedelta(days=days)
    old = Task.objects.filter(finished_at__lt=horizon, status__in=Task.FINISHED)
    deadline = time.monotonic() + budget
    retired = 0
    with acting_as(SYSTEM, label="retention"):
        while time.monotonic() < deadline:
            ids = list(old.order_by("finished_at", "pk").values_list("pk", flat=True)[:batch])
            if not ids:
                break
            with transaction.atomic():
                # The rows are read again under the stream lock: a task requeued meanwhile
                # is no longer finished and stays.
                count = old.filter(pk__in=ids).delete()[1].get(Task._meta.label, 0)
                Change.objects.filter(entity="task", object_id__in=ids).delete()
            retired += count
            metrics.TASKS_RETIRED.inc(count)
    if retired:
        log.info("retention: deleted %d finished tasks older than %d days (finished before %s)",
                 retired, days, horizon.isoformat(timespec="seconds"))
    return retired


def run_due_retirement():
    """Run `retire()` if this process wins this interval's lease; return its count or None."""
    if not settings.TASK_RETENTION_DAYS or not win_lease(LEASE_NAME, interval=RETIRE_INTERVAL, slack=1.0):
        return None
    return retire()

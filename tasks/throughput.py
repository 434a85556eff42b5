"""Tasks succeeded and failed per minute over the last hour, and the queue depth over time:
what the dashboard's chart draws (static/dashboard/chart.js), computed from the stored
history (realtime/changes.py) so a reload draws the same picture.

Only changes that moved a task's status are read (a partial index holds just those). The
queue depth at the end of each minute is today's depth minus what entered and left the queue
since then; both are read in one snapshot, so they agree. Minutes older than the kept history
(`complete_since`) are unknown and sent as null, never as zero.
"""
from contextlib import contextmanager
from datetime import timedelta

from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from realtime import changes as history
from realtime.models import Change
from realtime.snapshot import _snapshot_transaction as snapshot_transaction

from .models import Task

MINUTES = 60
QUEUED = Task.Status.QUEUED


@contextmanager
def one_snapshot():
    """The stream's read-only snapshot transaction (realtime/snapshot.py), or the caller's own."""
    if connection.in_atomic_block:
        yield
        return
    with snapshot_transaction():
        yield


def _counts(start):
    moved = Change.objects.filter(entity="task", moved=True, at__gte=start)
    return (
        moved.annotate(minute=TruncMinute("at")).values("minute").order_by("minute").annotate(
            succeeded=Count("id", filter=Q(status=Task.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=Task.Status.FAILED)),
            entered=Count("id", filter=Q(status=QUEUED)),
            left=Count("id", filter=Q(status_before=QUEUED)),
        )
    )


def throughput(now=None, minutes=MINUTES):
    """{"minutes": [ISO start of each minute, oldest first; the last is the current one],
    "succeeded": [...], "failed": [...], "queued": [depth at the end of each minute (now, for
    the last)], "since": when the kept history starts, "now": ...}."""
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    with one_snapshot():
        depth = Task.objects.filter(status=QUEUED).count()
        rows = list(_counts(start))
        since = history.complete_since()
    series = {key: [0] * minutes for key in ("succeeded", "failed", "net")}
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            for key in ("succeeded", "failed"):
                series[key][index] = row[key]
            series["net"][index] = row["entered"] - row["left"]
    queued = [0] * minutes
    for index in range(minutes - 1, -1, -1):
        queued[index] = depth
        depth -= series["net"][index]
    starts = [start + timedelta(minutes=i) for i in range(minutes)]
    for index, minute in enumerate(starts):
        if since is not None and minute + timedelta(minutes=1) <= since:  # ended before the history starts
            series["succeeded"][index] = series["failed"][index] = queued[index] = None
    return {
        "minutes": [m.isoformat() for m in starts],
        "succeeded": series["succeeded"], "failed": series["failed"], "queued": queued,
        "since": since.isoformat() if since else None, "now": now.isoformat(),
    }

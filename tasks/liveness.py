"""Agent liveness: agents not heard from within AGENT_OFFLINE_AFTER seconds go offline.

`sweep()` does one pass. `run_due_sweep()` is what servers call from a periodic loop
(REALTIME_PERIODIC_JOBS in settings; the hub of every process runs it): it runs the sweep
only if this process wins the database lease for the current AGENT_SWEEP_INTERVAL, so with
any number of processes the sweep runs once per interval, and with one process (the
embedded default) it needs no extra service.

What happens to an offline agent's running task is AGENT_OFFLINE_TASK_POLICY: "requeue"
(back to the queue at 0%, for another agent) or "fail" (with an error naming the agent).
An agent that calls the API again comes back idle or busy. The rules themselves (what going
offline does to a task) are in tasks/domain.py.
"""
import logging
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from realtime.actor import SYSTEM, acting_as
from realtime.sequencing import lock_stream

from . import domain
from .models import Agent, SweepLease, Task

log = logging.getLogger("tasks.liveness")

LEASE_NAME = "agent-sweep"
NEVER = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


def _stale(cutoff):
    """Agents last heard from before `cutoff` (or, never heard from, created before it)."""
    return Q(last_heartbeat__lt=cutoff) | Q(last_heartbeat__isnull=True, created_at__lt=cutoff)


def sweep(now=None):
    """Mark silent agents offline and requeue or fail their running tasks, all sequenced.

    Returns {"offline": [agent ids], "requeued": [task ids], "failed": [task ids]}."""
    now = now or timezone.now()
    limit = settings.AGENT_OFFLINE_AFTER
    cutoff = now - timedelta(seconds=limit)
    result = {"offline": [], "requeued": [], "failed": []}
    # Agents with something to change: online ones, and offline ones still holding a task.
    pending = Agent.objects.filter(_stale(cutoff)).filter(
        ~Q(status=Agent.Status.OFFLINE) | Q(tasks__status=Task.Status.RUNNING)
    )
    if not pending.exists():  # the usual case: a read, no lock
        return result
    # The history of every change below names the sweep as its actor.
    with acting_as(SYSTEM, label="liveness sweep"), transaction.atomic():
        lock_stream()  # read again under the lock, so a heartbeat cannot slip in between
        stale = dict(pending.distinct().values_list("pk", "name"))
        if not stale:
            return result
        result.update(domain.take_agents_offline(agents=stale, reason=f"no heartbeat for more than {limit:g} s"))
    if any(result.values()):
        log.info(
            "liveness sweep: %d agents offline, %d tasks requeued, %d failed",
            len(result["offline"]), len(result["requeued"]), len(result["failed"]),
        )
    return result


def win_lease(name=LEASE_NAME, interval=None, slack=0.0):
    """True if this process takes the lease `name` for the current interval.

    One conditional UPDATE decides: the row's last_run moves to now only where it is at least
    `interval - slack` old, and the database lets exactly one transaction do that. Times come
    from the database clock, so processes with skewed clocks still agree."""
    interval = settings.AGENT_SWEEP_INTERVAL if interval is None else interval
    due = SweepLease.objects.filter(name=name, last_run__lte=Now() - timedelta(seconds=interval - slack))
    if not due.exists():  # the common case costs a read, not a write
        if SweepLease.objects.filter(name=name).exists():
            return False
        SweepLease.objects.get_or_create(name=name, defaults={"last_run": NEVER})
    return due.update(last_run=Now()) == 1


def run_due_sweep():
    """Run `sweep()` if this process wins this interval's lease; return its result or None.

    Call it as often as you like (every second is cheap: one indexed read). A caller that
    calls exactly every AGENT_SWEEP_INTERVAL seconds would otherwise lose its own turn by a
    few milliseconds now and then and sweep only every other interval, so the lease is
    granted up to 10% (at most 1 s) early: sweeps are never closer than 90% of the interval."""
    interval = settings.AGENT_SWEEP_INTERVAL
    if not win_lease(interval=interval, slack=min(1.0, interval * 0.1)):
        return None
    return sweep()

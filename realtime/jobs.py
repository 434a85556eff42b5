"""Periodic jobs of a server process: tombstone and history pruning and REALTIME_PERIODIC_JOBS (the agent
liveness sweep), in a loop and a database thread of their own, so a slow job delays neither
the head check nor any socket. Jobs that must run once across processes take a lease
themselves (tasks/liveness.py)."""
import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError, OperationalError
from django.utils.module_loading import import_string

from . import changes, dbwork
from .sequencing import lock_timed_out
from .snapshot import prune_tombstones

log = logging.getLogger("realtime.jobs")

PRUNE_SECONDS = 600.0
HISTORY_PRUNE_SECONDS = 60.0  # a busy fleet writes many changes a minute: keep the overshoot small


class PeriodicJob:
    """A sync function run every `every` seconds."""

    def __init__(self, func, every):
        self.func, self.every, self.due = func, every, 0.0

    async def run_if_due(self, now):
        if now < self.due:
            return
        self.due = now + self.every
        try:
            await dbwork.run("jobs", self.func)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, OperationalError) and lock_timed_out(exc):
                # Another transaction held the stream lock (a long bulk change): the next run retries.
                log.warning("periodic job %s skipped: %s", self.func.__qualname__, exc)
            elif isinstance(exc, DatabaseError):  # the database is away: the hub says so; retry later
                log.warning("periodic job %s skipped, the database did not answer: %s", self.func.__qualname__, exc)
            else:
                log.exception("periodic job %s failed", self.func.__qualname__)


class PeriodicJobs:
    async def run(self):
        loop = asyncio.get_running_loop()
        jobs = [PeriodicJob(prune_tombstones, PRUNE_SECONDS), PeriodicJob(changes.prune, HISTORY_PRUNE_SECONDS)] + [
            PeriodicJob(import_string(path), every) for path, every in settings.REALTIME_PERIODIC_JOBS
        ]
        while True:
            await asyncio.sleep(1.0)
            for job in jobs:
                await job.run_if_due(loop.time())

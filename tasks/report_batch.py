"""Agents' progress reports, written together when they arrive together.

Progress reports are most of the writes: every agent reports every few seconds. Written one
by one, each is a transaction of its own under the stream lock, and the lock is held until
the commit is durable, so on PostgreSQL no two reports ever share a WAL flush, and on both
databases each report pays for its own lock, reads and history insert.

So the reports of one process queue here. When none is being written, a report is written at
once (no timer: a lone report waits for nothing). Reports that arrive meanwhile wait, and
when that write commits, the first of them writes them all in one transaction
(domain.report_progress), the way a database's group commit shares one flush among the
transactions that queued for it. Each report is saved as a lone report is (its own number,
its own agent as the actor of its history) and published after the commit; nothing is
published that is not durable, so a crash loses nothing a dashboard has seen.

Each report gets its own answer: its task as written, or the DomainError that refused it
(a report on a task that is no longer yours fails alone). A database error fails the whole
batch and every report in it gets that error, as each would have alone.

A report waits for the write ahead of it at most API_REPORT_WAIT seconds: one hung database
connection must not hold every report of the process. Past that it raises ReportTimeout (the
API answers 503 with Retry-After): taken out of the queue when it was still waiting there
(not recorded), or left to the write it was already part of (which may still record it).
A progress report says where the task is, not how far it moved, so sending it again is safe.
"""
import threading

from realtime import actor as actors
from realtime.metrics import REPORT_BATCH

MAX_BATCH = 100  # reports per transaction; more wait for the next one


class ReportTimeout(Exception):
    """A report waited longer than it may for the write ahead of it. `written`: False when
    it was taken out of the queue unwritten, None when it is part of a write still going on."""

    def __init__(self, waited, written):
        self.waited, self.written = waited, written
        if written is False:
            what = "It was not recorded."
        else:
            what = "It is part of that write, which may still record it."
        super().__init__(
            f"This progress report waited {waited:g} s for the database write ahead of it, which has not "
            f"finished. {what} Send it again after the Retry-After seconds.")


class _Waiting:
    __slots__ = ("report", "woken", "lead", "outcome")

    def __init__(self, report):
        self.report, self.woken, self.lead, self.outcome = report, threading.Event(), False, None


class Batcher:
    def __init__(self, write):
        self._write = write  # list of reports -> list of outcomes (a task or an exception)
        self._guard = threading.Lock()
        self._queue = []
        self._writing = False  # a leader is writing; the queue waits for it

    def submit(self, report, wait=None):
        """The report's outcome; waits at most `wait` seconds (None: no limit) for the write
        ahead of it, then raises ReportTimeout."""
        waiting = _Waiting(report)
        with self._guard:
            self._queue.append(waiting)
            lead = not self._writing
            self._writing = True
        if not lead:
            if not waiting.woken.wait(wait):
                self._give_up(waiting, wait)
            lead = waiting.lead  # woken to write the next batch, or with its answer
        if lead:
            self._lead()
        if isinstance(waiting.outcome, BaseException):
            raise waiting.outcome
        return waiting.outcome

    def _give_up(self, waiting, wait):
        """Past the wait: leave the queue, unless the report was chosen to write the next
        batch meanwhile (then it goes on as a leader) or is in the batch being written."""
        with self._guard:
            if waiting.lead:
                return
            if waiting in self._queue:
                self._queue.remove(waiting)
                raise ReportTimeout(wait, written=False)
        if not waiting.woken.is_set():
            raise ReportTimeout(wait, written=None)

    def _lead(self):
        with self._guard:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        REPORT_BATCH.observe(len(batch))
        try:
            outcomes = self._write([w.report for w in batch])
        except BaseException as failed:  # the database: every report in the batch fails with it
            outcomes = [failed] * len(batch)
        for waiting, outcome in zip(batch, outcomes):
            waiting.outcome = outcome
        with self._guard:
            following = self._queue[0] if self._queue else None
            self._writing = following is not None
            if following is not None:
                following.lead = True
        for waiting in batch:
            waiting.woken.set()
        if following is not None:
            following.woken.set()


def _write(reports):
    from . import domain

    if len(reports) == 1:  # alone: the plain path, which costs less than a batch of one
        r = reports[0]
        token = actors.set_current(r.actor)
        try:
            return [domain.report(agent_id=r.agent_id, task_id=r.task_id, progress=r.progress)]
        except domain.DomainError as refused:
            return [refused]
        finally:
            actors.reset(token)
    return domain.report_progress(reports)


_batcher = Batcher(_write)


def submit(agent_id, task_id, progress):
    """domain.report's progress-only case: the task as written, or raises its DomainError, or
    ReportTimeout past API_REPORT_WAIT seconds behind a write that has not finished."""
    from django.conf import settings

    from .domain import ProgressReport

    report = ProgressReport(agent_id, task_id, progress, actors.current())
    return _batcher.submit(report, wait=settings.API_REPORT_WAIT)

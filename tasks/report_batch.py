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
"""
import threading

from realtime import actor as actors
from realtime.metrics import REPORT_BATCH

MAX_BATCH = 100  # reports per transaction; more wait for the next one


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

    def submit(self, report):
        waiting = _Waiting(report)
        with self._guard:
            self._queue.append(waiting)
            lead = not self._writing
            self._writing = True
        if not lead:
            waiting.woken.wait()
            lead = waiting.lead  # woken to write the next batch, or with its answer
        if lead:
            self._lead()
        if isinstance(waiting.outcome, BaseException):
            raise waiting.outcome
        return waiting.outcome

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
            return [domain.report(agent_id=r.agent_id, task_id=r.task_id, progress=r.progress, batch=False)]
        except domain.DomainError as refused:
            return [refused]
        finally:
            actors.reset(token)
    return domain.report_progress(reports)


_batcher = Batcher(_write)


def submit(agent_id, task_id, progress):
    """domain.report's progress-only case: the task as written, or raises its DomainError."""
    from .domain import ProgressReport

    return _batcher.submit(ProgressReport(agent_id, task_id, progress, actors.current()))

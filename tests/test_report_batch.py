"""Agents' progress reports written together (tasks/report_batch.py): every report gets its
own answer, the history names each report's own agent, nothing is lost or numbered twice."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError

from realtime import actor
from realtime.models import Change, Stream
from tasks import domain, report_batch
from tasks.models import Agent, Task
from tasks.report_batch import Batcher


def _running(count):
    agents, tasks = [], []
    for i in range(count):
        agent = Agent.objects.create(name=f"bot-{i}", status=Agent.Status.BUSY)
        agents.append(agent)
        tasks.append(Task.objects.create(title=f"t{i}", status=Task.Status.RUNNING, agent=agent, progress=0))
    return agents, tasks


class FirstBatchHeld:
    """A batch writer whose first batch waits for `release` (at most `wait` seconds): a write
    in progress, or one that hangs. It keeps every batch and answers "done <report>"."""

    def __init__(self, wait):
        self.wait, self.batches = wait, []
        self.release, self.started = threading.Event(), threading.Event()
        self.released = None  # whether the first batch was released within its wait

    def __call__(self, reports):
        self.batches.append(list(reports))
        if len(self.batches) == 1:
            self.started.set()
            self.released = self.release.wait(self.wait)
        return [f"done {r}" for r in reports]


def test_reports_that_arrive_while_one_is_written_go_together_in_order():
    write = FirstBatchHeld(5)
    release, started, batches = write.release, write.started, write.batches
    batcher = Batcher(write)
    with ThreadPoolExecutor(6) as pool:
        try:
            first = pool.submit(batcher.submit, 0)
            assert started.wait(5), "the first report was not written"
            rest = [pool.submit(batcher.submit, n) for n in range(1, 6)]
            deadline = time.monotonic() + 10
            while len(batcher._queue) < 5:
                assert time.monotonic() < deadline, (
                    f"reports that arrive while one is written should wait for it: {len(batcher._queue)} of 5 "
                    f"queued after 10 s, batches written meanwhile: {batches}")
                threading.Event().wait(0.01)
        finally:
            release.set()
        assert first.result(5) == "done 0"
        assert [f.result(5) for f in rest] == [f"done {n}" for n in range(1, 6)]
    assert batches == [[0], [1, 2, 3, 4, 5]]


def test_each_report_gets_its_own_error_and_a_failed_write_fails_its_batch():
    def write(reports):
        if "boom" in reports:
            raise OperationalError("database is locked")
        return [ValueError(r) if r == "bad" else r for r in reports]

    batcher = Batcher(write)
    assert batcher.submit("ok") == "ok"
    with pytest.raises(ValueError):
        batcher.submit("bad")
    with pytest.raises(OperationalError):
        batcher.submit("boom")
    assert batcher.submit("ok again") == "ok again"  # the batcher is not left stuck


@pytest.mark.django_db(transaction=True)
def test_one_transaction_answers_each_report_and_keeps_each_agents_name():
    agents, tasks = _running(3)
    stranger = Agent.objects.create(name="stranger", status=Agent.Status.IDLE)
    reports = [
        domain.ProgressReport(agents[0].pk, tasks[0].pk, 10, actor.Actor(actor.AGENT, str(agents[0].pk), "bot-0")),
        domain.ProgressReport(stranger.pk, tasks[1].pk, 99, actor.Actor(actor.AGENT, str(stranger.pk), "stranger")),
        domain.ProgressReport(agents[1].pk, tasks[1].pk, 20, actor.Actor(actor.AGENT, str(agents[1].pk), "bot-1")),
        domain.ProgressReport(agents[2].pk, 10**9, 30, actor.Actor(actor.AGENT, str(agents[2].pk), "bot-2")),
        domain.ProgressReport(agents[0].pk, tasks[0].pk, 15, actor.Actor(actor.AGENT, str(agents[0].pk), "bot-0")),
    ]
    head = Stream.objects.get().head
    outcomes = domain.report_progress(reports)
    assert [type(o).__name__ for o in outcomes] == ["Task", "NotYours", "Task", "NotFound", "Task"]
    assert outcomes[0].progress == outcomes[4].progress == 15  # the later report on a task stands
    assert outcomes[2].progress == 20 and outcomes[2].agent.name == "bot-1"
    assert dict(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", "progress")) == {
        tasks[0].pk: 15, tasks[1].pk: 20, tasks[2].pk: 0}
    task_changes = Change.objects.filter(entity="task", seq__gt=head)
    assert dict(task_changes.values_list("object_id", "actor_label")) == {tasks[0].pk: "bot-0", tasks[1].pk: "bot-1"}
    assert Stream.objects.get().head == head + task_changes.count() + Change.objects.filter(entity="agent", seq__gt=head).count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_agents_reports_all_land_numbered_once():
    agents, tasks = _running(8)
    head = Stream.objects.get().head

    def agent_work(i):
        with actor.acting_as(actor.AGENT, agents[i].pk, agents[i].name):
            for n in range(1, 26):
                task = report_batch.submit(agents[i].pk, tasks[i].pk, n)  # as the API does
                assert task.progress == n and task.agent_id == agents[i].pk
        return i

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(agent_work, range(8))) == list(range(8))
    assert set(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("progress", flat=True)) == {25}
    changes = Change.objects.filter(seq__gt=head).order_by("seq")
    seqs = list(changes.values_list("seq", flat=True))
    assert seqs == list(range(head + 1, Stream.objects.get().head + 1))  # gapless, none twice
    for task, agent in zip(tasks, agents):  # each change names the agent that reported it
        labels = set(changes.filter(entity="task", object_id=task.pk).values_list("actor_label", flat=True))
        assert labels == {agent.name}
    assert changes.filter(entity="task").count() == 8 * 25


# A write that does not finish ---------------------------------------------------------------------


def test_a_report_waiting_behind_a_hung_write_gives_up_after_its_wait_and_is_not_written():
    """One hung database connection must not hold every report in the process: a report
    queued behind a write that does not finish is answered after `wait` seconds with
    ReportTimeout, and taken out of the queue (nothing writes it later)."""
    from tasks.report_batch import ReportTimeout

    write = FirstBatchHeld(60)
    release, started, batches = write.release, write.started, write.batches
    batcher = Batcher(write)
    with ThreadPoolExecutor(3) as pool:
        try:
            leader = pool.submit(batcher.submit, "first")
            assert started.wait(10), "the first report was not written"
            behind = pool.submit(batcher.submit, "behind", wait=0.2)
            with pytest.raises(ReportTimeout) as refused:
                behind.result(30)  # a deadline far past the 0.2 s wait
            assert refused.value.written is False and "not recorded" in str(refused.value)
            assert batcher._queue == []
        finally:
            release.set()
        assert leader.result(10) == "done first"
        assert write.released, "the test never released the hung write"
    assert batcher.submit("after") == "done after"  # the batcher is not left stuck
    assert batches == [["first"], ["after"]]


def test_a_report_already_in_a_hung_write_gives_up_saying_it_may_have_been_written():
    from tasks.report_batch import ReportTimeout

    first_go, second_started, second_go = threading.Event(), threading.Event(), threading.Event()
    batches = []

    def write(reports):
        batches.append(list(reports))
        if len(batches) == 1:
            assert first_go.wait(60)
        elif len(batches) == 2:
            second_started.set()
            assert second_go.wait(60)
        return list(reports)

    batcher = Batcher(write)
    with ThreadPoolExecutor(4) as pool:
        try:
            first = pool.submit(batcher.submit, 0)
            deadline = time.monotonic() + 10
            while not batches:
                assert time.monotonic() < deadline, "the first report was not written"
                threading.Event().wait(0.01)
            rest = [pool.submit(batcher.submit, 1), pool.submit(batcher.submit, 2, wait=0.2)]
            while len(batcher._queue) < 2:
                assert time.monotonic() < deadline, "the next reports did not queue"
                threading.Event().wait(0.01)
            first_go.set()
            assert second_started.wait(10), "the next batch was not written"
            with pytest.raises(ReportTimeout) as refused:
                rest[1].result(30)
            assert refused.value.written is None and "may" in str(refused.value)
        finally:
            first_go.set()
            second_go.set()
        assert first.result(10) == 0 and rest[0].result(10) == 1
    assert batches == [[0], [1, 2]]


@pytest.mark.server
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_report_behind_a_write_stuck_on_the_stream_lock_is_answered_503_with_retry_after(daphne, kind):
    """Through a real server: the test holds the stream lock, so the first report's write
    waits for it; the report queued behind that write is answered 503 with Retry-After once
    API_REPORT_WAIT has passed, while the lock is still held."""
    import requests
    from django.db import transaction

    from realtime.sequencing import lock_stream
    from tasks import tokens

    agents, tasks = _running(2)
    keys = [tokens.issue(agent)[1] for agent in agents]
    server = daphne(kind=kind, API_REPORT_WAIT="1", REALTIME_STREAM_LOCK_TIMEOUT="120", API_AGENT_RATE="100000/min")

    def report(i, progress):
        return requests.patch(f"{server.http}/api/agent/tasks/{tasks[i].pk}/", json={"progress": progress},
                              headers={"Authorization": f"Bearer {keys[i]}"}, timeout=150)

    assert [report(i, 5).status_code for i in range(2)] == [200, 200]  # warm: tokens and heartbeats recorded
    held, release = threading.Event(), threading.Event()

    def hold_the_stream_lock():
        with transaction.atomic():
            lock_stream()
            held.set()
            assert release.wait(120), "the test never released the stream lock"

    with ThreadPoolExecutor(3) as pool:
        holder = pool.submit(hold_the_stream_lock)
        try:
            assert held.wait(30), "the test could not take the stream lock"
            answers = [pool.submit(report, i, 50 + i) for i in range(2)]
            deadline = time.monotonic() + 60
            while not any(a.done() for a in answers):
                assert time.monotonic() < deadline, "no report was answered while a write waited for the stream lock"
                threading.Event().wait(0.1)
            done = next(a for a in answers if a.done()).result()
            assert done.status_code == 503, done.text[:300]
            assert done.headers["Content-Type"] == "application/json" and int(done.headers["Retry-After"]) >= 1
            assert "not recorded" in done.json()["detail"], done.text
            assert not all(a.done() for a in answers), "the write that waits for the lock was answered too"
        finally:
            release.set()
            holder.result(30)
        statuses = sorted(a.result(150).status_code for a in answers)
    assert statuses == [200, 503]
    assert report(0, 77).status_code == 200 and report(1, 78).status_code == 200  # nothing left stuck

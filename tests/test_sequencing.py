"""Sequencing: every committed write gets the next number of the stream, gapless and in
commit order, and is published (once, after commit) with exactly the stored row."""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.db.models import F

from realtime import publish, registry, sequencing
from realtime.models import Change, Stream, Tombstone
from realtime.protocol import LAYER_CHANGES, STREAM_GROUP
from realtime.rows import serialize
from realtime.sequencing import NotInTransaction, allocate
from tasks.models import Agent, Task
from tests.support.stream_lock import StreamLockHeld

ROOT = Path(__file__).resolve().parent.parent


# Helpers ----------------------------------------------------------------------------------


def head():
    stream = Stream.objects.filter(pk=1).first()
    return stream.head if stream else 0


def numbers_in_use():
    """Every sequence number the database still shows: row versions and tombstones."""
    return sorted(
        list(Task.objects.values_list("version", flat=True))
        + list(Agent.objects.values_list("version", flat=True))
        + list(Tombstone.objects.values_list("seq", flat=True))
    )


def upsert(instance):
    """The event a change of `instance` must publish: the row as stored in the database."""
    stored = type(instance)._base_manager.get(pk=instance.pk)
    return {"type": "event", "seq": stored.version, "entity": registry.entity_of(type(stored)).name, "op": "upsert",
            "data": serialize(stored)}


def delete(entity, object_id, seq):
    return {"type": "event", "seq": seq, "entity": entity, "op": "delete", "data": {"id": object_id}}


@pytest.fixture
def published(monkeypatch):
    """Every publish() call, as (epoch, events); the channel layer is not used."""
    calls = []
    monkeypatch.setattr(publish, "send_now", lambda epoch, events: calls.append((epoch, events)))
    return calls


def events_of(calls):
    """The published events as clients receive them (the fingerprint aside)."""
    return [{k: v for k, v in event.wire().items() if k != "fp"} for _, events in calls for event in events]


def assert_stream_consistent():
    numbers = numbers_in_use()
    assert len(numbers) == len(set(numbers)), f"duplicate sequence numbers: {numbers}"
    assert max(numbers, default=0) == head()
    assert all(n > 0 for n in numbers)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Context manager that runs on_commit callbacks as if the test's writes committed."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# Every write path -------------------------------------------------------------------------


@pytest.mark.django_db
class TestWritePaths:
    def test_create_gets_the_next_number(self, published, committed):
        start = head()
        with committed():
            task = Task.objects.create(title="first")
        assert task.version == start + 1 == head()
        assert Task.objects.get(pk=task.pk).version == start + 1
        assert events_of(published) == [upsert(task)]
        assert published[0][1][0].data["version"] == start + 1
        assert published[0][0] == Stream.objects.get().epoch

    def test_update_through_save_gets_the_next_number(self, published, committed):
        task = Task.objects.create(title="t")
        start = head()
        with committed():
            task.progress = 30
            task.save()
        assert task.version == start + 1 == head()
        event = upsert(task)
        assert event["data"]["progress"] == 30 and event["data"]["version"] == start + 1
        assert events_of(published) == [event]

    def test_every_save_is_numbered_even_with_update_fields(self, published, committed):
        task = Task.objects.create(title="t")
        start = head()
        with committed():
            task.title = "renamed"
            task.save(update_fields=["title"])
            task.progress = 40
            task.save(update_fields=["progress"])
        assert [e["seq"] for e in events_of(published)] == [start + 1, start + 2]
        assert Task.objects.get(pk=task.pk).version == start + 2
        assert events_of(published)[-1] == upsert(task)

    def test_delete_leaves_a_tombstone_with_the_next_number(self, published, committed):
        task = Task.objects.create(title="doomed")
        pk, start = task.pk, head()
        with committed():
            task.delete()
        tombstone = Tombstone.objects.get(seq=start + 1)
        assert (tombstone.entity, tombstone.object_id) == ("task", pk)
        assert head() == start + 1
        assert events_of(published) == [delete("task", pk, start + 1)]
        assert_stream_consistent()

    def test_queryset_delete_numbers_every_row(self, published, committed):
        tasks = [Task.objects.create(title=f"t{i}") for i in range(3)]
        keep = Task.objects.create(title="keep")
        start = head()
        with committed():
            Task.objects.exclude(pk=keep.pk).delete()
        tombstones = list(Tombstone.objects.order_by("seq").values_list("seq", "entity", "object_id"))
        assert [seq for seq, _, _ in tombstones] == [start + 1, start + 2, start + 3]
        assert sorted(pk for _, _, pk in tombstones) == sorted(t.pk for t in tasks)
        assert events_of(published) == [delete("task", pk, seq) for seq, _, pk in tombstones]
        assert_stream_consistent()

    def test_queryset_update_gives_each_row_its_own_consecutive_number(self, published, committed):
        tasks = [Task.objects.create(title=f"t{i}") for i in range(4)]
        untouched = Task.objects.create(title="other", status="failed")
        untouched_version = untouched.version
        start = head()
        with committed():
            count = Task.objects.filter(status="queued").update(progress=7)
        assert count == 4
        versions = [Task.objects.get(pk=t.pk).version for t in tasks]
        assert versions == [start + 1, start + 2, start + 3, start + 4]  # in primary-key order
        assert Task.objects.get(pk=untouched.pk).version == untouched_version
        assert head() == start + 4
        events = events_of(published)
        assert events == [upsert(t) for t in tasks]
        assert all(e["data"]["progress"] == 7 and e["data"]["version"] == e["seq"] for e in events)
        assert len(published) == 1  # one publish for the whole statement

    def test_queryset_update_matching_nothing_uses_no_number(self, published, committed):
        Task.objects.create(title="t")
        start = head()
        with committed():
            assert Task.objects.filter(status="running").update(progress=3) == 0
        assert head() == start
        assert published == []

    def test_bulk_create_numbers_rows_consecutively(self, published, committed):
        start = head()
        with committed():
            created = Task.objects.bulk_create([Task(title=f"b{i}") for i in range(5)])
        assert [t.version for t in created] == list(range(start + 1, start + 6))
        stored = list(Task.objects.order_by("version").values_list("title", "version"))
        assert stored == [(f"b{i}", start + 1 + i) for i in range(5)]
        assert events_of(published) == [upsert(t) for t in created]
        assert head() == start + 5

    def test_bulk_update_numbers_every_row(self, published, committed):
        tasks = [Task.objects.create(title=f"t{i}") for i in range(3)]
        start = head()
        for i, task in enumerate(tasks):
            task.progress = 10 * (i + 1)
        with committed():
            Task.objects.bulk_update(tasks, ["progress"])
        stored = {t.pk: t for t in Task.objects.all()}
        assert sorted(t.version for t in stored.values()) == [start + 1, start + 2, start + 3]
        assert [stored[t.pk].progress for t in tasks] == [10, 20, 30]
        assert events_of(published) == sorted((upsert(t) for t in tasks), key=lambda e: e["seq"])
        assert head() == start + 3

    def test_bulk_update_of_the_status_fills_the_timestamps(self):
        agent = Agent.objects.create(name="a")
        tasks = [Task.objects.create(title=f"t{i}", agent=agent) for i in range(2)]
        for task in tasks:
            task.status = "running"
        Task.objects.bulk_update(tasks, ["status"])
        assert all(t.started_at is not None for t in Task.objects.all())

    def test_update_or_create_numbers_the_create_and_the_update(self, published, committed):
        start = head()
        with committed():
            task, created = Task.objects.update_or_create(title="unique-job", defaults={"progress": 5})
        assert created and task.version == start + 1
        with committed():
            again, created = Task.objects.update_or_create(title="unique-job", defaults={"progress": 55})
        assert not created and again.pk == task.pk
        stored = Task.objects.get(pk=task.pk)
        assert (stored.progress, stored.version) == (55, start + 2)
        events = events_of(published)
        assert [e["seq"] for e in events] == [start + 1, start + 2]
        assert [e["data"]["progress"] for e in events] == [5, 55]
        assert events[-1] == upsert(task)

    def test_get_or_create_numbers_only_the_create(self, published, committed):
        start = head()
        with committed():
            Task.objects.get_or_create(title="once")
            Task.objects.get_or_create(title="once")
        assert head() == start + 1
        assert len(events_of(published)) == 1

    def test_deleting_an_agent_nulls_its_tasks_through_sequenced_updates(self, published, committed):
        agent = Agent.objects.create(name="atlas")
        other = Agent.objects.create(name="borealis")
        mine = [Task.objects.create(title=f"m{i}", status="running", agent=agent) for i in range(2)]
        theirs = Task.objects.create(title="theirs", status="running", agent=other)
        theirs_version = theirs.version
        agent_pk, start = agent.pk, head()
        with committed():
            agent.delete()
        stored = [Task.objects.get(pk=t.pk) for t in mine]
        assert all(t.agent_id is None for t in stored)
        assert [t.version for t in stored] == [start + 1, start + 2]
        assert Task.objects.get(pk=theirs.pk).version == theirs_version
        assert Task.objects.get(pk=theirs.pk).agent_id == other.pk
        tombstone = Tombstone.objects.get(entity="agent", object_id=agent_pk)
        assert tombstone.seq == start + 3 == head()
        assert events_of(published) == [upsert(t) for t in mine] + [delete("agent", agent_pk, start + 3)]
        assert_stream_consistent()

    def test_related_manager_add_is_sequenced(self, published, committed):
        agent = Agent.objects.create(name="atlas")
        task = Task.objects.create(title="t")
        start = head()
        with committed():
            agent.tasks.add(task)
        assert Task.objects.get(pk=task.pk).agent_id == agent.pk
        assert Task.objects.get(pk=task.pk).version == start + 1 == head()
        assert events_of(published) == [upsert(task)]

    def test_related_manager_remove_and_clear_are_sequenced(self, published, committed):
        agent = Agent.objects.create(name="atlas")
        a = Task.objects.create(title="a", status="running", agent=agent)
        b = Task.objects.create(title="b", status="running", agent=agent)
        start = head()
        with committed():
            agent.tasks.remove(a)
            agent.tasks.clear()
        assert Task.objects.get(pk=a.pk).version == start + 1
        assert Task.objects.get(pk=b.pk).version == start + 2
        assert events_of(published) == [upsert(a), upsert(b)]

    def test_f_expression_save_publishes_the_stored_value(self, published, committed):
        task = Task.objects.create(title="t", progress=10)
        with committed():
            task.progress = F("progress") + 5
            task.save()
        assert task.progress == 15  # read back, not an expression
        events = events_of(published)
        assert events == [upsert(task)]
        assert events[0]["data"]["progress"] == 15
        json.dumps(events)  # the event is plain data

    def test_f_expression_queryset_update_publishes_the_stored_values(self, published, committed):
        tasks = [Task.objects.create(title=f"t{i}", progress=i) for i in range(3)]
        with committed():
            Task.objects.update(progress=F("progress") + 50)
        events = events_of(published)
        assert sorted(e["data"]["progress"] for e in events) == [50, 51, 52]
        assert events == sorted((upsert(t) for t in tasks), key=lambda e: e["seq"])

    @pytest.mark.parametrize("option", [{"ignore_conflicts": True},
                                        {"update_conflicts": True, "unique_fields": ["name"], "update_fields": ["hostname"]}])
    def test_bulk_create_with_conflict_handling_is_refused_clearly(self, published, option):
        Agent.objects.create(name="atlas")
        start = head()
        with pytest.raises(NotImplementedError, match="conflict"):
            Agent.objects.bulk_create([Agent(name="atlas"), Agent(name="new")], **option)
        assert head() == start
        assert list(Agent.objects.values_list("name", flat=True)) == ["atlas"]
        assert published == []

    def test_agent_writes_are_numbered_in_the_same_stream(self, published, committed):
        start = head()
        with committed():
            agent = Agent.objects.create(name="atlas")
            task = Task.objects.create(title="t")
            Agent.objects.filter(pk=agent.pk).update(status="busy")
        assert Agent.objects.get(pk=agent.pk).version == start + 3
        assert task.version == start + 2
        events = events_of(published)
        assert [(e["seq"], e["entity"]) for e in events] == [(start + 1, "agent"), (start + 2, "task"), (start + 3, "agent")]
        assert events[-1] == upsert(agent)

    def test_versions_and_tombstones_account_for_the_head(self, published, committed):
        start = head()
        with committed():
            agent = Agent.objects.create(name="atlas")
            tasks = Task.objects.bulk_create([Task(title=f"t{i}") for i in range(6)])
            Task.objects.filter(pk__in=[t.pk for t in tasks[:3]]).update(status="running", agent=agent)
            tasks[4].title = "renamed"
            tasks[4].save()
            tasks[5].delete()
            Task.objects.filter(pk=tasks[0].pk).update(progress=F("progress") + 1)
            Agent.objects.create(name="gone").delete()
        assert_stream_consistent()
        seqs = [e["seq"] for e in events_of(published)]
        # Everything published, each number once, in order, no gaps.
        assert seqs == list(range(start + 1, head() + 1))
        # Each row's version is the number of its last published change.
        last = {}
        for event in events_of(published):
            last[(event["entity"], event["data"]["id"])] = event
        for task in Task.objects.all():
            assert last[("task", task.pk)]["seq"] == task.version
            assert last[("task", task.pk)]["data"] == serialize(task)
        assert last[("agent", agent.pk)]["data"] == serialize(Agent.objects.get(pk=agent.pk))

    def test_savepoint_rollback_gives_its_numbers_back(self, published, committed):
        start = head()
        with committed():
            with transaction.atomic():
                kept = Task.objects.create(title="kept")
                try:
                    with transaction.atomic():
                        Task.objects.create(title="rolled back")
                        Task.objects.update(progress=9)
                        raise RuntimeError("abort inner")
                except RuntimeError:
                    pass
                after = Task.objects.create(title="after")
        assert (kept.version, after.version) == (start + 1, start + 2)
        assert head() == start + 2
        assert not Task.objects.filter(title="rolled back").exists()
        assert [e["seq"] for e in events_of(published)] == [start + 1, start + 2]
        assert [e["data"]["title"] for e in events_of(published)] == ["kept", "after"]


# Commit and rollback, on real transactions ------------------------------------------------


@pytest.mark.django_db(transaction=True)
class TestCommitAndRollback:
    def test_events_are_published_only_after_commit(self, published):
        start = head()
        with transaction.atomic():
            task = Task.objects.create(title="t")
            task.progress = 20
            task.save()
            assert published == []  # not before commit
        assert [[e.seq for e in events] for _, events in published] == [[start + 1], [start + 2]]
        assert [e["data"]["progress"] for e in events_of(published)] == [0, 20]
        assert events_of(published)[-1] == upsert(task)

    def test_autocommit_write_is_published_at_once(self, published):
        task = Task.objects.create(title="t")
        assert events_of(published) == [upsert(task)]

    def test_a_rolled_back_transaction_leaves_no_gap_and_publishes_nothing(self, published):
        Task.objects.create(title="before")
        start = head()
        published.clear()
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                Task.objects.create(title="ghost")
                Task.objects.update(progress=50)
                Agent.objects.create(name="ghost")
                raise RuntimeError("roll back")
        assert head() == start
        assert published == []
        task = Task.objects.create(title="next")
        assert task.version == start + 1
        assert events_of(published) == [upsert(task)]
        assert Task.objects.get(title="before").progress == 0

    def test_a_failed_write_gives_its_number_back(self, published):
        task = Task.objects.create(title="t")
        start = head()
        published.clear()
        task.progress = 140  # refused by the CHECK constraint
        with pytest.raises(Exception):
            task.save()
        assert head() == start and published == []
        assert Task.objects.create(title="u").version == start + 1

    def test_allocating_outside_a_transaction_is_refused(self):
        with pytest.raises(NotInTransaction):
            allocate(1)

    def test_events_reach_the_stream_group_through_redis_from_a_process_without_a_server(self, redis_server, settings):
        """A management command or shell has no event loop: its publisher thread sends."""
        from asgiref.sync import sync_to_async
        from channels.layers import channel_layers

        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                               "CONFIG": {"hosts": [redis_server.url]}}}
        channel_layers.backends.clear()
        try:
            layer = get_channel_layer()

            async def subscribe_write_receive():
                channel = await layer.new_channel()
                await layer.group_add(STREAM_GROUP, channel)
                # A worker may open its connection ahead of its first change: hubs hear nothing of it.
                await sync_to_async(publish.connect, thread_sensitive=False)()
                task = await sync_to_async(Task.objects.create, thread_sensitive=False)(title="over the layer")
                return task, await asyncio.wait_for(layer.receive(channel), 5)

            task, message = async_to_sync(subscribe_write_receive)()
        finally:
            channel_layers.backends.clear()
        assert message["type"] == LAYER_CHANGES
        assert message["epoch"] == Stream.objects.get().epoch
        assert [{k: v for k, v in e.items() if k != "fp"} for e in message["events"]] == [upsert(task)]


# Concurrency --------------------------------------------------------------------------------


def assert_commit_order(ops):
    """ops: (start_ns, seq, end_ns) of committed writes from any thread or process.

    If one write returned before another began, it must have the smaller number."""
    by_end = sorted(ops, key=lambda op: op[2])
    by_start = sorted(ops, key=lambda op: op[0])
    max_seq_done, i = 0, 0
    for start, seq, _ in by_start:
        while i < len(by_end) and by_end[i][2] < start:
            max_seq_done = max(max_seq_done, by_end[i][1])
            i += 1
        assert seq > max_seq_done, f"seq {seq} began after seq {max_seq_done} had committed"


@pytest.mark.django_db(transaction=True)
def test_threads_writing_at_once_get_gapless_unique_numbers():
    threads_n, writes = 4, 15
    start_head = head()
    barrier = threading.Barrier(threads_n)
    results, errors = {}, []

    def work(n):
        ops = []
        try:
            barrier.wait(10)
            for i in range(writes):
                t0 = time.monotonic_ns()
                task = Task.objects.create(title=f"thread{n}-{i}")
                ops.append((t0, task.version, time.monotonic_ns()))
                t0 = time.monotonic_ns()
                task.progress = i
                task.save()
                ops.append((t0, task.version, time.monotonic_ns()))
            results[n] = ops
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers), "writer threads still running after 60 s"
    assert not errors, errors
    total = threads_n * writes * 2
    seqs = [seq for ops in results.values() for _, seq, _ in ops]
    assert sorted(seqs) == list(range(start_head + 1, start_head + total + 1))
    assert head() == start_head + total
    for ops in results.values():
        own = [seq for _, seq, _ in ops]
        assert own == sorted(own)
    assert_commit_order([op for ops in results.values() for op in ops])
    assert_stream_consistent()


PG_WORKER = r"""
import json, os, time
from pathlib import Path
from realtime.models import Tombstone
from tasks.models import Task
me, rounds, sync = os.environ["WORKER"], int(os.environ["ROUNDS"]), Path(os.environ["SYNC_DIR"])
(sync / f"ready-{me}").touch()
deadline = time.time() + 60
while not (sync / "go").exists() and time.time() < deadline:
    time.sleep(0.005)
ops = []
def timed(write):
    t0 = time.monotonic_ns()
    seq = write()
    ops.append([t0, seq, time.monotonic_ns()])
for i in range(rounds):
    task = Task(title=f"w{me}-{i}")
    timed(lambda: (task.save(), task.version)[1])
    if i % 3 == 0:
        task.progress = i % 100
        timed(lambda: (task.save(), task.version)[1])
    if i % 10 == 9:
        pk = task.pk
        timed(lambda: (task.delete(), Tombstone.objects.get(entity="task", object_id=pk).seq)[1])
print("OPS" + json.dumps(ops))
"""


@pytest.mark.postgres
def test_processes_writing_at_once_on_postgresql_get_gapless_ordered_numbers(postgres_url, tmp_path):
    import psycopg

    name = f"dash_seq_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = dict(os.environ, DATABASE_URL=url, PYTHONUNBUFFERED="1", SYNC_DIR=str(tmp_path), ROUNDS="50")
        env.pop("REDIS_URL", None)
        migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        workers = [
            subprocess.Popen([sys.executable, "manage.py", "shell", "-c", PG_WORKER], cwd=ROOT,
                             env=dict(env, WORKER=str(n)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(4)
        ]
        try:
            deadline = time.time() + 60
            while len(list(tmp_path.glob("ready-*"))) < len(workers):
                assert all(w.poll() is None for w in workers), [w.communicate(timeout=10) for w in workers if w.poll() is not None]
                assert time.time() < deadline, f"{len(list(tmp_path.glob('ready-*')))} of {len(workers)} workers ready after 60 s"
                time.sleep(0.02)
            (tmp_path / "go").touch()
            outputs = [w.communicate(timeout=120) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait(10)
        per_process = []
        for worker, (out, err) in zip(workers, outputs):
            assert worker.returncode == 0, err
            line = next(line for line in out.splitlines() if line.startswith("OPS"))
            per_process.append(json.loads(line[3:]))

        with psycopg.connect(url) as db:
            (stream_head,) = db.execute("SELECT head FROM realtime_stream WHERE id = 1").fetchone()
            versions = [v for (v,) in db.execute("SELECT version FROM tasks_task")]
            tombstones = [s for (s,) in db.execute("SELECT seq FROM realtime_tombstone")]

        # 4 processes x (50 creates + 17 updates + 5 deletes)
        all_ops = [op for ops in per_process for op in ops]
        assert len(all_ops) == 4 * (50 + 17 + 5)
        seqs = [seq for _, seq, _ in all_ops]
        assert sorted(seqs) == list(range(1, stream_head + 1)), "numbers are not exactly 1..head"
        in_db = sorted(versions + tombstones)
        assert len(in_db) == len(set(in_db))
        assert max(in_db) == stream_head
        assert set(in_db) <= set(seqs)
        assert len(tombstones) == 4 * 5 and len(versions) == 4 * 45
        for ops in per_process:
            own = [seq for _, seq, _ in ops]
            assert own == sorted(own), "a process saw its own numbers go backwards"
        assert_commit_order(all_ops)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Edges: joins that repeat rows, stale instances, mass deletions, bounded rows ------------------


@pytest.mark.django_db
class TestEdges:
    def test_update_over_a_join_that_repeats_a_row_numbers_it_once(self, published, committed):
        agent = Agent.objects.create(name="a")
        Task.objects.bulk_create([Task(title=f"t{i}", status="running", agent=agent) for i in range(3)])
        start = head()
        with committed():
            count = Agent.objects.filter(tasks__status="running").update(hostname="h")
        assert count == 1 and head() == start + 1
        assert [e["data"]["id"] for e in events_of(published)] == [agent.pk]
        assert_stream_consistent()

    def test_save_with_update_fields_on_a_stale_instance_publishes_the_database_row(self, published, committed):
        task = Task.objects.create(title="old title")
        stale = Task.objects.get(pk=task.pk)
        Task.objects.filter(pk=task.pk).update(title="new title")
        with committed():
            stale.progress = 5
            stale.save(update_fields=["progress"])
        [event] = events_of(published)[-1:]
        assert event["data"]["title"] == "new title" and event["data"]["progress"] == 5
        assert event == upsert(task)

    def test_queryset_delete_of_many_rows_is_one_batch_of_numbers_and_tombstones(self, published, committed):
        from realtime import sequencing

        Task.objects.bulk_create([Task(title=f"t{i}") for i in range(2 * sequencing.DELETE_CHUNK + 7)])
        start = head()
        with committed():
            deleted, per_model = Task.objects.all().delete()
        assert deleted == 2 * sequencing.DELETE_CHUNK + 7 == per_model["tasks.Task"]
        assert head() == start + deleted and Tombstone.objects.filter(seq__gt=start).count() == deleted
        seqs = [e["seq"] for e in events_of(published)]
        assert seqs == list(range(start + 1, start + deleted + 1)), "one number per row, in order"
        assert all(e["op"] == "delete" for e in events_of(published))
        assert_stream_consistent()

    def test_deleting_an_agent_numbers_the_detached_tasks_and_the_deletion(self, published, committed):
        agent = Agent.objects.create(name="a")
        task = Task.objects.create(title="t", agent=agent, status="running")
        start = head()
        with committed():
            agent.delete()
        ops = [(e["entity"], e["op"]) for e in events_of(published)]
        assert ops == [("task", "upsert"), ("agent", "delete")]
        assert Task.objects.get(pk=task.pk).agent_id is None and head() == start + 2
        assert_stream_consistent()

    def test_a_rolled_back_mass_deletion_gives_its_numbers_back(self, published):
        Task.objects.bulk_create([Task(title=f"t{i}") for i in range(50)])
        start = head()
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                Task.objects.all().delete()
                raise RuntimeError("changed my mind")
        assert head() == start and Task.objects.count() == 50 and not Tombstone.objects.filter(seq__gt=start).exists()

    def test_a_row_with_megabytes_of_text_travels_as_a_bounded_excerpt(self, settings):
        settings.REALTIME_WIRE_TEXT_CHARS = 2000
        task = Task.objects.create(title="T" * 200, status="failed", error="E" * 1_500_000)
        row = serialize(task)
        assert row["error"] == "E" * 2000 and row["title"] == "T" * 200 and row["truncated"] == ["error"]
        # SQLite does not enforce max_length: a longer title is cut on the wire too.
        row = serialize(Task(pk=1, title="T" * 5000, error="E" * 1_500_000, version=1))
        assert row["title"] == "T" * 200 and row["truncated"] == ["title", "error"]
        assert len(json.dumps(row)) < 4000
        assert "truncated" not in serialize(Task.objects.create(title="short"))

    def test_model_validation_bounds_long_text(self):
        from django.core.exceptions import ValidationError

        from tasks.models import TEXT_LIMIT

        task = Task(title="t", status="failed", error="E" * (TEXT_LIMIT + 1), finished_at=None)
        with pytest.raises(ValidationError) as info:
            task.full_clean()
        assert "error" in info.value.message_dict


@pytest.mark.django_db(transaction=True)
def test_a_writer_waiting_too_long_for_the_stream_lock_gets_a_clear_error(settings, caplog):
    """A transaction left open (here: another thread holding the stream lock) fails other
    writers after REALTIME_STREAM_LOCK_TIMEOUT with StreamLockTimeout, a log line and a metric."""
    from django.db import OperationalError

    from realtime import metrics
    from realtime.sequencing import StreamLockTimeout

    Task.objects.create(title="t")
    with StreamLockHeld():
        before = metrics.STREAM_LOCK_TIMEOUTS._value.get()
        started = time.monotonic()
        with pytest.raises(OperationalError) as info:
            with transaction.atomic():
                Task.objects.create(title="blocked")
        waited = time.monotonic() - started
    if connection.vendor == "postgresql":
        assert isinstance(info.value, StreamLockTimeout) and "stream lock" in str(info.value)
        assert metrics.STREAM_LOCK_TIMEOUTS._value.get() == before + 1
        assert any("stream lock timeout" in r.getMessage() for r in caplog.records)
    else:  # SQLite takes the lock at BEGIN IMMEDIATE: its busy timeout answers
        assert "database is locked" in str(info.value)
    assert waited < settings.REALTIME_STREAM_LOCK_TIMEOUT + 5
    assert not Task.objects.filter(title="blocked").exists()


# Rows read under the stream lock are trusted until written -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_progress_report_costs_five_statements_inside_its_transaction():
    """The lock, the task (with its agent), the number, the row, its history: no second read
    of the row before or after the write (realtime/sequencing.py, Locked)."""
    from django.test.utils import CaptureQueriesContext

    from tasks import domain

    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="t")
    domain.claim(agent_id=agent.pk)
    domain.report(agent_id=agent.pk, task_id=task.pk, progress=1)  # the agent's heartbeat is fresh now
    with CaptureQueriesContext(connection) as queries:
        domain.report(agent_id=agent.pk, task_id=task.pk, progress=2)
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    inner = [s for s in statements if s not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]
    assert len(inner) == 5, queries.captured_queries
    row = Task.objects.get(pk=task.pk)
    assert row.progress == 2 and Change.objects.filter(object_id=task.pk, seq=row.version).exists()


@pytest.mark.django_db(transaction=True)
def test_an_instance_whose_row_was_written_since_it_was_read_is_read_again():
    """Loaded under the lock, then its row changed by an update in the same transaction: its
    values before its own save are the row's, not what it was loaded with."""
    from realtime import counts

    from realtime.sequencing import lock_stream

    task = Task.objects.create(title="t", status="queued")
    sequencing.recount(registry.windowed())
    with transaction.atomic():
        lock_stream()
        loaded = Task.objects.get(pk=task.pk)  # queued, under the lock
        Task.objects.filter(pk=task.pk).update(status="cancelled")  # the row moves on
        loaded.title = "renamed"
        loaded.status = "cancelled"
        loaded.save(update_fields=["title", "status"])
    found, complete = counts.read(registry.windowed())
    assert complete and found["queued"] == 0 and found["cancelled"] == 1, found
    change = Change.objects.filter(object_id=task.pk).order_by("-seq").first()
    assert change.status_before == "cancelled" and change.status == "cancelled"
    assert Task.objects.get(pk=task.pk).title == "renamed"


@pytest.mark.django_db(transaction=True)
def test_a_row_saved_twice_in_one_transaction_keeps_its_counts():
    from realtime import counts

    from realtime.sequencing import lock_stream

    task = Task.objects.create(title="t", status="queued")
    sequencing.recount(registry.windowed())
    with transaction.atomic():
        lock_stream()
        loaded = Task.objects.get(pk=task.pk)
        loaded.status = "cancelled"
        loaded.save(update_fields=["status"])
        loaded.status = "queued"
        loaded.save(update_fields=["status"])
    found, _ = counts.read(registry.windowed())
    assert found["queued"] == 1 and found["cancelled"] == 0, found

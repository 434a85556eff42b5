"""Sequencing: every committed change to a sequenced model gets the next number of one stream.

The rule that keeps numbers gapless and in commit order: a writing transaction first bumps
the single `realtime_stream` row (`UPDATE ... SET head = head + n RETURNING head`). That
statement row-locks the stream until the transaction ends, so writers queue behind each
other, numbers are handed out in commit order, and a rollback gives its numbers back.

`SequencedModel` routes every write path through here: `save()`, `delete()` (through the
pre_delete signal, which also covers `QuerySet.delete()` and cascades), `QuerySet.update()`,
`bulk_create()` and `bulk_update()`. For entities registered with `history=True`, each path
also keeps its changes, with their actor, in the same transaction (realtime/changes.py).
Writes that bypass it (raw SQL, `loaddata`'s raw saves, data migrations) cannot be numbered;
realtime/epochs.py changes the epoch for the last two so that clients reset, and
tests/test_sequencing.py tries every path.

A writer waits at most REALTIME_STREAM_LOCK_TIMEOUT for the stream lock (on PostgreSQL the
session's `lock_timeout`, set in realtime/apps.py; on SQLite the busy timeout): a
transaction left open in a shell then fails the others with `StreamLockTimeout`, a log line
and a metric, instead of freezing every writer without a word.
"""
import logging
import uuid
from contextlib import contextmanager

from django.db import OperationalError, connections, models, transaction
from django.db.models.expressions import Combinable
from django.utils import timezone

from . import changes, counts, metrics, publish, registry
from .events import delete as delete_event
from .events import upsert as upsert_event

log = logging.getLogger("realtime.sequencing")

DELETE_CHUNK = 2000  # rows per Collector pass when a QuerySet deletes many (bounds memory)


class NotInTransaction(RuntimeError):
    pass


class StreamLockTimeout(OperationalError):
    """The stream lock was not granted in time: another transaction holds it."""


def lock_timed_out(exc):
    """True when `exc` says a lock wait ran out (PostgreSQL lock_timeout, SQLite busy)."""
    code = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    return isinstance(exc, StreamLockTimeout) or code == "55P03" or "database is locked" in str(exc)


def _lock_timeout_error(exc):
    from django.conf import settings

    metrics.STREAM_LOCK_TIMEOUTS.inc()
    message = (
        f"the stream lock was not granted within {settings.REALTIME_STREAM_LOCK_TIMEOUT:g} s: another "
        "transaction holds it (a shell or job with an open transaction, or a very large bulk "
        "change). Finish or roll back that transaction; see docs/operations.md."
    )
    log.error("stream lock timeout: %s", message)
    return StreamLockTimeout(message)


class Locked:
    """What a transaction has written since it took the stream lock: every sequenced writer
    waits for that lock, so a row this transaction reads under it stays what it read until
    this transaction writes it. Sequencing then trusts an instance loaded under the lock (its
    values before a change, its other fields after one) instead of reading the row again:
    two statements less per save (tests/test_sequencing.py counts them).

    `writes` counts the transaction's allocations; `written` maps (model label, pk) to the
    count at its last write. A savepoint rolled back inside the transaction is not seen: an
    instance loaded in it and saved after it should be loaded again first, as Django advises
    for any instance that outlived a rollback."""

    __slots__ = ("atomic", "writes", "written")

    def __init__(self, atomic):
        self.atomic, self.writes, self.written = atomic, 0, {}

    def wrote(self, model, pks):
        label = model._meta.label
        for pk in pks:
            self.written[(label, pk)] = self.writes

    def stale(self, instance, at):
        """Was the instance's row written at or after the moment `at` it was loaded?"""
        return self.written.get((type(instance)._meta.label, instance.pk), -1) >= at


def locked(connection):
    """The Locked of `connection`'s transaction when it holds the stream lock, else None."""
    state = getattr(connection, "stream_locked", None)
    if state is None or not connection.in_atomic_block or state.atomic is not connection.atomic_blocks[0]:
        return None
    return state


def allocate(count, using="default"):
    """Reserve `count` sequence numbers; return (the first, the stream's epoch).

    Must run inside a transaction: the numbers are given back if it rolls back."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise NotInTransaction("sequence numbers must be allocated inside transaction.atomic()")
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "UPDATE realtime_stream SET head = head + %s WHERE id = 1 RETURNING head, epoch", [count]
            )
        except OperationalError as exc:
            if lock_timed_out(exc):
                raise _lock_timeout_error(exc) from exc
            raise
        row = cursor.fetchone()
        if row is None:
            # A database emptied by `flush` (or a test) has no stream row: start a new epoch,
            # which tells every client that its history is gone.
            cursor.execute(
                "INSERT INTO realtime_stream (id, epoch, head, pruned_through) "
                "VALUES (1, %s, 0, 0) ON CONFLICT (id) DO NOTHING",
                [str(uuid.uuid4())],
            )
            cursor.execute(
                "UPDATE realtime_stream SET head = head + %s WHERE id = 1 RETURNING head, epoch",
                [count],
            )
            row = cursor.fetchone()
    state = locked(connection)
    if state is None:
        state = connection.stream_locked = Locked(connection.atomic_blocks[0])
    state.writes += 1
    return row[0] - count + 1, row[1]


def lock_stream(using="default"):
    """Take the stream lock first, so every writer locks in the same order (no deadlocks)."""
    allocate(0, using)


def recount(entity, using="default"):
    """Count `entity`'s rows again under the stream lock and mark its counts complete
    (realtime/counts.py): after writes that were not numbered, or when no counts were kept."""
    with transaction.atomic(using=using):
        lock_stream(using)
        counts.replace(entity, using)


def _commit(entity, events, using, epoch, op=changes.UPDATE):
    """What every write path does with its numbered events, in the writer's transaction: keep
    their history (realtime/changes.py), count them (realtime/counts.py), and publish them
    once the transaction commits (realtime/publish.py)."""
    if not events:
        return
    if entity.history:
        changes.record(entity, events, using, op)
    if entity.counted:
        counts.add(entity, events, using)
    publish.after_commit(epoch, events, using)


def _watched(entity, queryset):
    """{pk: the watched values} of the rows of `queryset`, read under the stream lock."""
    if not entity.watched:
        return {pk: None for pk in queryset.values_list("pk", flat=True)}
    return {row[0]: tuple(row[1:]) for row in queryset.values_list("pk", *entity.watched)}


def _current(instance, using):
    """The instance's watched values as its row holds them now, when it was loaded whole under
    the stream lock of this transaction and its row was not written since; else None."""
    loaded = instance.__dict__.get("_loaded_under_lock")
    if loaded is None:
        return None
    state, at, values = loaded
    if locked(connections[using]) is not state or state.stale(instance, at):
        return None
    return values


def _before_save(instance, entity, using):
    """("create" or "update", the watched values before) of a save, for its history, the
    counts and the views: those the instance was loaded with under the stream lock, else one
    primary-key read; only for entities that watch fields."""
    if not entity.watched or instance.pk is None:
        return "create", None
    current = _current(instance, using)
    if current is not None:
        return "update", current
    found = list(type(instance)._base_manager.using(using).filter(pk=instance.pk).values_list(*entity.watched)[:1])
    if not found:
        return "create", None
    return "update", tuple(found[0])


class SequencedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes are sequenced like `save()`."""

    def update(self, **kwargs):
        """Update each matched row under its own sequence number, then publish after commit."""
        with transaction.atomic(using=self.db):
            lock_stream(self.db)
            entity = registry.entity_of(self.model)
            # distinct(): a filter across a relation may repeat a row; it gets one number.
            # The same read gives the values each row had, for its history, counts and views.
            before = _watched(entity, self.order_by("pk").distinct())
            pks = sorted(before)
            if not pks:
                return 0
            first, epoch = allocate(len(pks), self.db)
            now = timezone.now()
            kwargs = {"updated_at": now, **self.model.derived_updates(kwargs, now), **kwargs}
            plain = models.QuerySet(self.model, using=self.db)
            for offset, pk in enumerate(pks):
                plain.filter(pk=pk).update(**kwargs, version=first + offset)
            locked(connections[self.db]).wrote(self.model, pks)
            rows = self.model._base_manager.using(self.db).filter(pk__in=pks).order_by("version")
            events = [upsert_event(row.version, entity.name, entity.serializer(row), before[row.pk]) for row in rows]
            _commit(entity, events, self.db, epoch)
        return len(pks)

    update.alters_data = True

    def delete(self):
        """Delete the matched rows, numbering every deletion (one batch of numbers and
        tombstones), a chunk of rows at a time so that 150,000 rows do not sit in memory."""
        with transaction.atomic(using=self.db), deletion_batch(self.db):
            pks = list(self.order_by("pk").values_list("pk", flat=True).distinct())
            total, per_model = 0, {}
            plain = models.QuerySet(self.model, using=self.db)
            for start in range(0, len(pks), DELETE_CHUNK):
                count, counts = plain.filter(pk__in=pks[start:start + DELETE_CHUNK]).delete()
                total += count
                for label, n in counts.items():
                    per_model[label] = per_model.get(label, 0) + n
        return total, per_model

    delete.alters_data = True
    delete.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs):
        """Insert rows with consecutive sequence numbers, then publish after commit."""
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise NotImplementedError(
                "conflict handling would hide which rows changed; save the rows one by one"
            )
        objs = list(objs)
        if not objs:
            return objs
        with transaction.atomic(using=self.db):
            entity = registry.entity_of(self.model)
            first, epoch = allocate(len(objs), self.db)
            now = timezone.now()
            for offset, obj in enumerate(objs):
                obj.version = first + offset
                obj.prepare_for_write(now)
            created = super().bulk_create(objs, *args, **kwargs)
            events = [upsert_event(obj.version, entity.name, entity.serializer(obj)) for obj in created]
            _commit(entity, events, self.db, epoch, changes.CREATE)
        return created

    bulk_create.alters_data = True

    def bulk_update(self, objs, fields, *args, **kwargs):
        """Fill derived fields like save() does; update() then numbers each row."""
        objs = list(objs)
        now = timezone.now()
        for obj in objs:
            obj.prepare_for_write(now)
        fields = list(dict.fromkeys([*fields, *self.model.derived_fields]))
        return super().bulk_update(objs, fields, *args, **kwargs)

    bulk_update.alters_data = True


class SequencedModel(models.Model):
    """A model whose every committed change is numbered and published (see module docstring).
    Register it with the stream (realtime/registry.py) to name its entity and its row."""

    derived_fields = ()  # fields prepare_for_write() may change, saved with any update_fields
    version = models.BigIntegerField(default=0, editable=False, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = SequencedQuerySet.as_manager()

    class Meta:
        abstract = True
        # Related managers (`agent.tasks.add(task)`) and deletion cascades write through the
        # base manager: make it the sequenced one, so those paths are numbered too.
        base_manager_name = "objects"

    def prepare_for_write(self, now):
        """Hook for subclasses: fill derived fields before a row is written."""
        self.updated_at = now

    @classmethod
    def from_db(cls, db, field_names, values):
        """A row read from the database: remembered as current when it was read whole under
        the stream lock of this transaction (see Locked)."""
        instance = super().from_db(db, field_names, values)
        state = locked(connections[db])
        if state is not None and len(values) == len(cls._meta.concrete_fields):
            entity = registry.lookup(cls)
            if entity is not None:
                instance._remember(state, entity)
        return instance

    def _remember(self, state, entity):
        values = tuple(getattr(self, name) for name in entity.watched) if entity.watched else ()
        self.__dict__["_loaded_under_lock"] = (state, state.writes + 1, values)

    @classmethod
    def derived_updates(cls, values, now):
        """Hook for subclasses: what prepare_for_write() does, as QuerySet.update() values."""
        return {}

    def validate_constraints(self, exclude=None):
        """save() fills the derived fields, so constraints on them are checked by the database."""
        return super().validate_constraints(exclude=set(exclude or ()) | set(self.derived_fields))

    def save(self, *args, **kwargs):
        using = kwargs.get("using") or self._state.db or "default"
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = set(update_fields) | {"version", "updated_at", *self.derived_fields}
        # No savepoint inside a caller's transaction (two statements less per write), as
        # Django's own save_base does: a failed save marks that transaction for rollback, so
        # its numbers are given back with it.
        with transaction.atomic(using=using, savepoint=False):
            entity = registry.entity_of(type(self))
            current = _current(self, using) is not None  # before this save counts as a write
            self.version, epoch = allocate(1, using)
            op, before = _before_save(self, entity, using)
            self.prepare_for_write(timezone.now())
            super().save(*args, **kwargs)
            expressions = [
                f.attname for f in self._meta.concrete_fields
                if isinstance(getattr(self, f.attname), Combinable)
            ]
            if expressions:  # F() values: read back what the database stored
                self.refresh_from_db(fields=expressions)
            row = self
            if update_fields is not None and not current:
                # The other fields of this instance may be out of date: publish the row as
                # the database holds it, not as this instance remembers it.
                row = type(self)._base_manager.using(using).get(pk=self.pk)
            state = locked(connections[using])
            state.wrote(type(self), [self.pk])
            row._remember(state, entity)  # what it holds now is the row, until the next write to it
            _commit(entity, [upsert_event(self.version, entity.name, entity.serializer(row), before)], using, epoch, op)

    save.alters_data = True

    def delete(self, *args, **kwargs):
        using = kwargs.get("using") or self._state.db or "default"
        with transaction.atomic(using=using), deletion_batch(using):
            self._refresh_watched(using)
            return super().delete(*args, **kwargs)

    def _refresh_watched(self, using):
        """Before a delete, under the stream lock: this instance may have been loaded long ago,
        and its deletion leaves the counts, the views and its history with what it held."""
        entity = registry.lookup(type(self))
        if entity is None or not entity.watched or self.pk is None:
            return
        found = type(self)._base_manager.using(using).filter(pk=self.pk).values_list(*entity.watched).first()
        if found is not None:
            for name, value in zip(entity.watched, found):
                setattr(self, name, value)

    delete.alters_data = True


@contextmanager
def deletion_batch(using):
    """Collect the deletions made inside the block and number them together at its end:
    one allocation, one bulk insert of tombstones and one publish for any number of rows.
    Takes the stream lock first, like every writer. Nested batches join the outer one."""
    connection = connections[using]
    batch = getattr(connection, "stream_deletions", None)
    if batch is not None:
        yield batch
        return
    lock_stream(using)
    batch = connection.stream_deletions = []
    try:
        yield batch
        _number_deletions(batch, using)
    finally:
        connection.stream_deletions = None


def _number_deletions(batch, using):
    from .models import Tombstone

    if not batch:
        return
    first, epoch = allocate(len(batch), using)
    tombstones = [Tombstone(seq=first + i, entity=entity.name, object_id=pk) for i, (entity, pk, _) in enumerate(batch)]
    Tombstone.objects.using(using).bulk_create(tombstones, batch_size=500)
    by_entity = {}
    for seq, (entity, pk, before) in enumerate(batch, first):
        by_entity.setdefault(entity, []).append(delete_event(seq, entity.name, pk, before))
    for entity, events in by_entity.items():
        if entity.history:
            changes.record(entity, events, using, changes.DELETE)
        if entity.counted:
            counts.add(entity, events, using)
    publish.after_commit(epoch, sorted((e for es in by_entity.values() for e in es), key=lambda e: e.seq), using)


def sequence_deletion(sender, instance, using, **kwargs):
    """pre_delete receiver (every model; RealtimeConfig.ready() connects it): number the
    deletion of a sequenced row and leave a tombstone, in the same transaction.

    Inside a deletion batch (every `delete()` of a sequenced model opens one) the deletion is
    numbered with the rest of the batch; a cascade from elsewhere is numbered at once."""
    if not isinstance(instance, SequencedModel):
        return
    entity = registry.entity_of(sender)
    # The values it had go with it: into its history, the counts and the views.
    before = tuple(getattr(instance, name) for name in entity.watched) if entity.watched else None
    item = (entity, instance.pk, before)
    batch = getattr(connections[using], "stream_deletions", None)
    if batch is not None:
        batch.append(item)
        return
    with deletion_batch(using) as batch:
        batch.append(item)

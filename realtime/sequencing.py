"""Sequencing: every committed change to a sequenced model gets the next number of one stream.

The rule that keeps numbers gapless and in commit order: a writing transaction first bumps
the single `realtime_stream` row (`UPDATE ... SET head = head + n RETURNING head`). That
statement row-locks the stream until the transaction ends, so writers queue behind each
other, numbers are handed out in commit order, and a rollback gives its numbers back.

`SequencedModel` routes every write path through here: `save()`, `delete()` (through the
pre_delete signal, which also covers `QuerySet.delete()` and cascades), `QuerySet.update()`,
`bulk_create()` and `bulk_update()`. Raw SQL is the one way around it; don't.
"""
import uuid

from django.db import connections, models, transaction
from django.db.models.expressions import Combinable
from django.utils import timezone

from . import publish
from .rows import serialize


class NotInTransaction(RuntimeError):
    pass


def allocate(count, using="default"):
    """Reserve `count` sequence numbers; return (the first, the stream's epoch).

    Must run inside a transaction: the numbers are given back if it rolls back."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise NotInTransaction("sequence numbers must be allocated inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE realtime_stream SET head = head + %s WHERE id = 1 RETURNING head, epoch", [count]
        )
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
    return row[0] - count + 1, row[1]


def lock_stream(using="default"):
    """Take the stream lock first, so every writer locks in the same order (no deadlocks)."""
    allocate(0, using)


def upsert_event(instance):
    return {
        "type": "event",
        "seq": instance.version,
        "entity": instance.stream_entity,
        "op": "upsert",
        "data": serialize(instance),
    }


def delete_event(entity, object_id, seq):
    return {"type": "event", "seq": seq, "entity": entity, "op": "delete", "data": {"id": object_id}}


class SequencedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes are sequenced like `save()`."""

    def update(self, **kwargs):
        """Update each matched row under its own sequence number, then publish after commit."""
        with transaction.atomic(using=self.db):
            lock_stream(self.db)
            pks = list(self.order_by("pk").values_list("pk", flat=True))
            if not pks:
                return 0
            first, epoch = allocate(len(pks), self.db)
            now = timezone.now()
            kwargs = {"updated_at": now, **self.model.derived_updates(kwargs, now), **kwargs}
            plain = models.QuerySet(self.model, using=self.db)
            for offset, pk in enumerate(pks):
                plain.filter(pk=pk).update(**kwargs, version=first + offset)
            rows = self.model._base_manager.using(self.db).filter(pk__in=pks).order_by("version")
            publish.after_commit(epoch, [upsert_event(row) for row in rows], self.db)
        return len(pks)

    update.alters_data = True

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
            first, epoch = allocate(len(objs), self.db)
            now = timezone.now()
            for offset, obj in enumerate(objs):
                obj.version = first + offset
                obj.prepare_for_write(now)
            created = super().bulk_create(objs, *args, **kwargs)
            publish.after_commit(epoch, [upsert_event(obj) for obj in created], self.db)
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
    """A model whose every committed change is numbered and published (see module docstring)."""

    stream_entity = None  # "task" or "agent": the `entity` of its events
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
        with transaction.atomic(using=using):
            self.version, epoch = allocate(1, using)
            self.prepare_for_write(timezone.now())
            super().save(*args, **kwargs)
            expressions = [
                f.attname for f in self._meta.concrete_fields
                if isinstance(getattr(self, f.attname), Combinable)
            ]
            if expressions:  # F() values: read back what the database stored
                self.refresh_from_db(fields=expressions)
            publish.after_commit(epoch, [upsert_event(self)], using)

    save.alters_data = True


def sequence_deletion(sender, instance, using, **kwargs):
    """pre_delete receiver: number the deletion and leave a tombstone, in the same transaction."""
    from .models import Tombstone

    seq, epoch = allocate(1, using)
    Tombstone.objects.using(using).create(
        seq=seq, entity=sender.stream_entity, object_id=instance.pk
    )
    publish.after_commit(epoch, [delete_event(sender.stream_entity, instance.pk, seq)], using)

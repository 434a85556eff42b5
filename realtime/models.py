"""The change stream's durable state: its head sequence number, its epoch, and tombstones."""
import uuid

from django.db import models


class Stream(models.Model):
    """The one row that numbers every change. `head` is the last sequence number handed out.

    The row is locked by the `UPDATE ... SET head = head + 1` of each writing transaction
    until it commits, which is what makes numbers gapless and in commit order.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    epoch = models.CharField(max_length=36, default=uuid.uuid4)
    head = models.BigIntegerField(default=0)
    # Tombstones up to this sequence number have been pruned: a `since` below it can no
    # longer be answered with a delta and gets a reset.
    pruned_through = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="stream_singleton")]

    def __str__(self):
        return f"stream {self.epoch} at {self.head}"


class Tombstone(models.Model):
    """A deleted row, remembered so a returning client learns about the deletion."""

    seq = models.BigIntegerField(primary_key=True)
    entity = models.CharField(max_length=16)
    object_id = models.BigIntegerField()
    deleted_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["entity", "object_id"])]

    def __str__(self):
        return f"{self.entity} {self.object_id} deleted at {self.seq}"


class Change(models.Model):
    """One numbered change of a streamed row, kept for timelines and charts (realtime/changes.py).

    Written by sequencing in the writer's own transaction, under the stream lock, for entities
    registered with `history=True`; so ids grow in commit order, like `seq`. Pruned to
    REALTIME_HISTORY_DAYS and REALTIME_HISTORY_MAX_ROWS by the periodic jobs."""

    CREATE, UPDATE, DELETE = "create", "update", "delete"

    seq = models.BigIntegerField()
    entity = models.CharField(max_length=16)
    object_id = models.BigIntegerField()
    op = models.CharField(max_length=8)
    actor_kind = models.CharField(max_length=16)  # realtime/actor.py: operator, agent, system
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    # The entity's status field (registry `status_field`) after and before the change, and
    # whether it moved (a create or a delete always does): what the charts count, indexed.
    status = models.CharField(max_length=32, blank=True)
    status_before = models.CharField(max_length=32, blank=True)
    moved = models.BooleanField(default=False)
    row = models.JSONField(null=True)  # the row as the wire shows it (bounded); null for a delete
    at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["entity", "object_id", "seq"], name="change_object_seq"),
            models.Index(fields=["entity", "at"], name="change_moved_at", condition=models.Q(moved=True)),
            # A resuming client's fingerprint is checked against the change at its number.
            models.Index(fields=["seq"], name="change_seq"),
        ]

    def __str__(self):
        return f"{self.entity} {self.object_id} {self.op} at {self.seq}"


class Count(models.Model):
    """How many rows of a counted entity (one registered with views) have each status: kept by
    every writer in its own transaction, under the stream lock (realtime/counts.py), so a sync
    reads exact counts at its number without counting a table of millions of rows."""

    entity = models.CharField(max_length=16)
    value = models.CharField(max_length=32)  # a status; "" marks the entity's counts as complete
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "value"], name="count_entity_value")]

    def __str__(self):
        return f"{self.entity} {self.value or '(complete)'}: {self.n}"

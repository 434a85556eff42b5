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

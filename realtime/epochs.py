"""When the stream's history moves backwards or is rewritten, its epoch changes.

A client's position is (epoch, sequence number). Within one epoch, numbers only grow and
each names one change; a client that resumes from N trusts that the database still holds
every change up to N. That stops being true when:

- the database head is lower than a number a process or client has already seen (a restore
  from a backup, SQLite losing its last commits on power loss): the hub notices it on its
  head check, `build_sync` when a client resumes from beyond the head;
- rows are written without sequencing: `loaddata` (raw saves) or a data migration.

Then `rotate_epoch()` gives the stream a new epoch, and moves the head past every version
stored, so later changes are numbered above any row a client may hold. Every client then
resynchronises with a reset (an unknown epoch always gets one).
"""
import logging
import uuid

from django.apps import apps
from django.db import connections, transaction
from django.db.migrations.operations import RunPython, RunSQL
from django.db.models import Max

from . import counts, registry
from .models import Tombstone
from .sequencing import SequencedModel, allocate

log = logging.getLogger("realtime.epochs")


def sequenced_models():
    """Every sequenced model, registered with the stream or not (a raw write to any is news)."""
    return [model for model in apps.get_models() if issubclass(model, SequencedModel)]


def highest_stored(using):
    """The highest sequence number any stored row or tombstone carries."""
    numbers = [model._base_manager.using(using).aggregate(top=Max("version"))["top"] for model in sequenced_models()]
    numbers.append(Tombstone.objects.using(using).aggregate(top=Max("seq"))["top"])
    return max((n for n in numbers if n is not None), default=0)


def rotate_epoch(reason, expected_epoch=None, using="default", level=logging.WARNING):
    """Start a new epoch (unless `expected_epoch` is given and no longer current: someone
    rotated already), logged at `level`. Returns the new (epoch, head), or None when nothing
    was done."""
    with transaction.atomic(using=using):
        first, epoch = allocate(0, using)  # takes the stream lock
        if expected_epoch is not None and epoch != expected_epoch:
            return None
        head = max(first - 1, highest_stored(using))
        new = str(uuid.uuid4())
        with connections[using].cursor() as cursor:
            cursor.execute("UPDATE realtime_stream SET epoch = %s, head = %s WHERE id = 1", [new, head])
        # Rows may have been written without sequencing: count them again, under the same lock.
        for entity in registry.entities():
            if entity.counted:
                counts.replace(entity, using)
    log.log(level, "stream epoch rotated to %s at head %s: %s; every client will reset", new, head, reason)
    return new, head


def raw_save(sender, instance, raw, using, **kwargs):
    """post_save receiver: a raw save (loaddata) wrote a row without sequencing it.

    In the same transaction, the epoch changes and the head moves past the loaded version,
    so nothing numbered later can be lower than a row that came from the fixture."""
    if not raw or not isinstance(instance, SequencedModel):
        return
    with transaction.atomic(using=using):
        allocate(0, using)
        with connections[using].cursor() as cursor:
            cursor.execute(
                "UPDATE realtime_stream SET epoch = %s, head = CASE WHEN head < %s THEN %s ELSE head END WHERE id = 1",
                [str(uuid.uuid4()), instance.version, instance.version],
            )
        counts.forget(using)  # counted again by the next reader (one save per loaded row)


def after_migrate(sender, plan=None, using="default", **kwargs):
    """post_migrate receiver: a migration that ran code or SQL may have written rows."""
    writers = [
        f"{migration.app_label}.{migration.name}"
        for migration, _backwards in plan or ()
        if any(isinstance(op, (RunPython, RunSQL)) for op in migration.operations)
    ]
    if writers:
        # A database with no rows yet (the first migrate) has no client to reset: not news.
        level = logging.WARNING if highest_stored(using) else logging.INFO
        rotate_epoch(f"data migrations ran ({', '.join(writers)})", using=using, level=level)

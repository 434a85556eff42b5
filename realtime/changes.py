"""The history of changes: every numbered change of an entity registered with `history=True`,
with who made it, kept in the database for timelines and charts.

Written by sequencing (realtime/sequencing.py) at the one place each write path numbers its
rows, with one batched insert in the writer's transaction: a change and its history commit or roll
back together, and `QuerySet.update()`, `bulk_create()`, `bulk_update()` and deletions are
recorded like `save()`. (django-simple-history and django-auditlog record from model signals,
which `QuerySet.update()` and `bulk_create()` never send; that is why this is not one of them.)

Each Change keeps the row as the wire shows it (bounded, realtime/rows.py), so a timeline
describes a change by comparing it with the one before. The actor is realtime/actor.py's.
History is pruned to REALTIME_HISTORY_DAYS and REALTIME_HISTORY_MAX_ROWS (`prune()`, run by
the periodic jobs, realtime/jobs.py); pruning goes oldest first, so what is kept is complete
from its oldest row on.
"""
import json
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Max, Min
from django.utils import timezone

from . import actor as actors
from .events import fingerprint
from .models import Change

CREATE, UPDATE, DELETE = Change.CREATE, Change.UPDATE, Change.DELETE
PRUNE_CHUNK = 10_000  # rows per pruning transaction: writers never wait long behind one


def text(value):
    """A status as stored: "" for none."""
    return "" if value is None else str(value)


COLUMNS = ("seq", "entity", "object_id", "op", "actor_kind", "actor_id", "actor_label",
           "status", "status_before", "moved", "row", "at")
INSERT_BATCH = 2000  # rows per executemany: bounds the parameter list held at once


def record(entity, events, using, op=UPDATE):
    """Keep `events` (upserts or deletes of `entity`, as sequencing built them) as Change rows,
    in the writer's transaction; mark each event with its fingerprint (realtime/events.py).

    `op` says whether upserts created or updated their rows; each event's `before` holds the
    status it had (entity.watched)."""
    who = actors.current()
    at = timezone.now()
    field = entity.status_field
    rows = []
    for event in events:
        prior = text(entity.status_of(event.before))
        status = "" if event.deleted or not field else text(event.data.get(field))
        kind = DELETE if event.deleted else op
        rows.append((event.seq, entity.name, event.id, kind, who.kind, who.id or "", who.label[:150],
                     status, prior, kind != UPDATE or status != prior, None if event.deleted else json.dumps(event.data)))
        event.fp = fingerprint(event.seq, at)
    _insert(rows, at, using)


def _insert(rows, at, using):
    """executemany, not bulk_create(): a deletion of 150,000 rows keeps 150,000 changes, and
    Django's per-field preparation cost several times the insert itself (measured: 20.8 s
    against 4.3 s for 150,000 on SQLite). Every row of a write shares its time."""
    connection = connections[using]
    quote = connection.ops.quote_name
    at = connection.ops.adapt_datetimefield_value(at)
    columns = ", ".join(quote(c) for c in COLUMNS)
    sql = f"INSERT INTO {quote(Change._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_BATCH):
            cursor.executemany(sql, [(*row, at) for row in rows[start:start + INSERT_BATCH]])


def fingerprint_at(seq, using="default"):
    """The fingerprint of the change numbered `seq` as this database holds it; None when no
    change with that number is kept (its entity keeps no history, or it was pruned)."""
    at = Change.objects.using(using).filter(seq=seq).values_list("at", flat=True).first()
    return None if at is None else fingerprint(seq, at)


def oldest_kept(using="default"):
    """The lowest number whose change is still kept, or None when the history is empty."""
    return Change.objects.using(using).aggregate(low=Min("seq"))["low"]


# Reading ---------------------------------------------------------------------------------------


def of_object(entity, object_id, *, before=None, after=None, limit=50, moved=None):
    """Changes of one object, newest first: at most `limit`, below `before` or above `after`;
    with `moved=True` only those that changed its status."""
    changes = Change.objects.filter(entity=entity, object_id=object_id)
    if moved is not None:
        changes = changes.filter(moved=moved)
    if before is not None:
        changes = changes.filter(seq__lt=before)
    if after is not None:
        changes = changes.filter(seq__gt=after)
    return list(changes.order_by("-seq")[:limit])


def previous_of(change):
    """The change of the same object just before `change`, or None (never kept, or pruned)."""
    return (
        Change.objects.filter(entity=change.entity, object_id=change.object_id, seq__lt=change.seq)
        .order_by("-seq").first()
    )


def newest_moved(entity):
    """The id of the newest change that moved a status of `entity` (the partial index), or None."""
    return Change.objects.filter(entity=entity, moved=True).order_by("-at", "-id").values_list("id", flat=True).first()


def complete_since():
    """The time from which the kept history is complete (its oldest row), or None when empty."""
    return Change.objects.aggregate(oldest=Min("at"))["oldest"]


# Pruning ---------------------------------------------------------------------------------------


def prune(now=None):
    """Forget changes older than REALTIME_HISTORY_DAYS and beyond the newest
    REALTIME_HISTORY_MAX_ROWS, oldest first. Returns how many were deleted."""
    horizon = (now or timezone.now()) - timedelta(days=settings.REALTIME_HISTORY_DAYS)
    bound = Change.objects.filter(at__lt=horizon).order_by("-at").values_list("id", flat=True).first() or 0
    newest = Change.objects.aggregate(top=Max("id"))["top"] or 0
    # ids grow in commit order; a rolled-back insert leaves a gap, so this keeps at most the limit
    bound = max(bound, newest - settings.REALTIME_HISTORY_MAX_ROWS)
    lowest = Change.objects.aggregate(low=Min("id"))["low"]
    deleted = 0
    while lowest is not None and lowest <= bound:
        upper = min(bound, lowest + PRUNE_CHUNK - 1)
        with transaction.atomic():
            count, _ = Change.objects.filter(id__lte=upper).delete()
        deleted += count
        lowest = upper + 1
    return deleted

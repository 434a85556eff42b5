"""Rows per status of each counted entity (registered with views), exact at every number.

Every sequenced write adds its changes' deltas (a status left, a status entered) to the
`realtime_count` rows in the writer's own transaction, under the stream lock: a snapshot that
reads the stream head also reads the counts at that head. Counting a table of a million rows
takes 50 ms on SQLite and more on PostgreSQL; reading these rows takes none of that.

Writes that bypass sequencing (raw SQL, `loaddata`, data migrations) rotate the epoch
(realtime/epochs.py), which also marks the counts incomplete; the next reader counts the
table once, under the stream lock, and writers go on from there.
"""
from collections import Counter

from django.db import connections
from django.db.models import Count as Rows

from .models import Count

COMPLETE = ""  # the value of the marker row: the entity's counts are whole


def deltas(entity, events):
    """{status: change} of `events` (Event objects of `entity`); zero changes left out."""
    field = entity.status_field
    change = Counter()
    for event in events:
        before = entity.status_of(event.before)
        if before is not None:
            change[before] -= 1
        if not event.deleted:
            change[event.data[field]] += 1
    return {value: n for value, n in change.items() if n}


def add(entity, events, using):
    """Add the deltas of `events` to the counts, in the writer's transaction."""
    change = deltas(entity, events)
    if not change:
        return
    connection = connections[using]
    table = connection.ops.quote_name(Count._meta.db_table)
    rows = ", ".join(["(%s, %s, %s)"] * len(change))
    params = [p for value, n in change.items() for p in (entity.name, value, n)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (entity, value, n) VALUES {rows} "
            f"ON CONFLICT (entity, value) DO UPDATE SET n = {table}.n + excluded.n", params,
        )


def read(entity, using="default"):
    """({status: rows} for every status of `entity`, complete?) as this transaction sees them."""
    found = dict(Count.objects.using(using).filter(entity=entity.name).values_list("value", "n"))
    complete = COMPLETE in found
    found.pop(COMPLETE, None)
    statuses = [value for value, _ in entity.model._meta.get_field(entity.status_field).choices]
    return {status: found.get(status, 0) for status in statuses}, complete


def replace(entity, using="default"):
    """Count `entity`'s rows again and mark its counts complete. The caller holds the stream
    lock (realtime/sequencing.py recount), so no writer changes the table in between."""
    counted = _count(entity, using)
    Count.objects.using(using).filter(entity=entity.name).delete()
    Count.objects.using(using).bulk_create(
        [Count(entity=entity.name, value=value, n=n) for value, n in counted.items()]
        + [Count(entity=entity.name, value=COMPLETE, n=0)]
    )


def _count(entity, using):
    rows = entity.model._base_manager.using(using).order_by().values_list(entity.status_field).annotate(n=Rows("pk"))
    return {value: n for value, n in rows}


def forget(using="default"):
    """Mark every entity's counts incomplete (rows were written without sequencing)."""
    Count.objects.using(using).filter(value=COMPLETE).delete()

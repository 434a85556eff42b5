"""Building the `sync` answer: a compact delta when the client's history is known, else a reset.

Runs in a worker thread (it reads the database). The head, the rows and the tombstones are
read in one transaction with a stable snapshot, so the answer is exactly the database at
sequence `seq` and the events after `seq` apply cleanly on top.
"""
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import changes, counts, metrics, registry
from .frames import dumps, sync_frames
from .models import Stream, Tombstone
from .rows import serialize
from .sequencing import recount

log = logging.getLogger("realtime.snapshot")


def stream_position():
    """(epoch, head) of the stream; creates the stream row on a fresh database."""
    stream = Stream.objects.filter(pk=1).values_list("epoch", "head").first()
    if stream is None:
        with transaction.atomic():
            Stream.objects.get_or_create(pk=1)
        stream = Stream.objects.filter(pk=1).values_list("epoch", "head").first()
    return stream


@contextmanager
def _snapshot_transaction():
    """A read-only transaction whose statements all see one snapshot of the database."""
    if connection.vendor == "sqlite":
        # Django opens SQLite transactions with BEGIN IMMEDIATE (settings.py), which would take
        # the write lock; a deferred read transaction in WAL mode reads one snapshot instead.
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                yield
            finally:
                cursor.execute("COMMIT")
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One snapshot for every statement (READ COMMITTED would take one per statement).
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


class ResetCache:
    """The last full reset, encoded once and shared: after a deploy thousands of clients may
    ask for the same state at the same head."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._texts = None

    def get(self, key):
        with self._lock:
            return self._texts if self._key == key else None

    def put(self, key, texts):
        with self._lock:
            self._key, self._texts = key, texts


reset_cache = ResetCache()


class StreamTooLarge(Exception):
    """A subscribe without a view, on a table larger than REALTIME_MAX_STREAM_ROWS."""


def build_sync(since, epoch):
    """Return (the encoded sync frames, head seq, whether it is a reset).

    A client whose position this database cannot vouch for (another epoch, a number beyond
    the head, history pruned, a fingerprint that differs: see `verified_position`) gets a
    reset; nothing it claims changes what any other client gets."""
    return _build(since, epoch)


def _build(since, epoch):
    with _snapshot_transaction():
        stream = Stream.objects.filter(pk=1).values("epoch", "head", "pruned_through").first()
        if stream is not None:
            return _answer(stream, since, epoch)
    stream_position()  # a database emptied by `flush`: give it its stream row back first
    return _build(since, epoch)


def _rows(queryset):
    return [dumps(serialize(row)) for row in queryset.iterator(chunk_size=2000)]


def _answer(stream, since, epoch):
    """The sync for a client at (since, epoch); runs inside the snapshot transaction."""
    extras = {"heartbeat_interval": settings.REALTIME_HEARTBEAT_INTERVAL}
    head = stream["head"]
    _refuse_if_too_large()
    fp = changes.fingerprint_at(head)
    if fp is not None:
        extras["fp"] = fp
    entities = registry.entities()
    if _resumable(stream, since, epoch):
        keys = {entity.name: entity.key for entity in entities}
        deleted = {entity.key: [] for entity in entities}
        tombstones = Tombstone.objects.filter(seq__gt=since).order_by("seq").values_list("entity", "object_id")
        for name, object_id in tombstones.iterator(chunk_size=5000):
            if name in keys:
                deleted[keys[name]].append(object_id)
        rows = {e.key: _rows(e.model._base_manager.filter(version__gt=since).order_by("version")) for e in entities}
        texts = sync_frames(epoch=stream["epoch"], seq=head, reset=False, rows=rows, deleted=deleted, extras=extras)
        return texts, head, False
    key = (stream["epoch"], head, settings.REALTIME_MAX_SEND_BYTES, fp)
    texts = reset_cache.get(key)
    if texts is None:
        rows = {entity.key: _rows(entity.snapshot()) for entity in entities}
        texts = sync_frames(epoch=stream["epoch"], seq=head, reset=True, rows=rows, deleted={}, extras=extras)
        reset_cache.put(key, texts)
    return texts, head, True


def prune_tombstones(now=None):
    """Forget deletions older than REALTIME_TOMBSTONE_RETENTION; later resumes from before
    them get a reset. Returns how many were pruned."""
    horizon = (now or timezone.now()) - timedelta(seconds=settings.REALTIME_TOMBSTONE_RETENTION)
    with transaction.atomic():
        newest = (
            Tombstone.objects.filter(deleted_at__lt=horizon).order_by("-seq").values_list("seq", flat=True).first()
        )
        if newest is None:
            return 0
        count, _ = Tombstone.objects.filter(seq__lte=newest).delete()
        Stream.objects.filter(pk=1, pruned_through__lt=newest).update(pruned_through=newest)
    return count


# Whose position is it ------------------------------------------------------------------------


def _resumable(stream, since, epoch):
    """Can a client at (since, epoch) get a delta? Only for a number this epoch has reached and
    whose deletions are still remembered. A client ahead of the head is answered with a reset
    and nothing more: the hub's own memory of the head decides whether history moved back
    (realtime/hub.py), never one client's claim."""
    if since is None or epoch != stream["epoch"]:
        return False
    if since > stream["head"]:
        metrics.POSITIONS_REFUSED.labels(reason="ahead").inc()
        log.info("a client resumed from %s, beyond the head %s: it gets a reset", since, stream["head"])
        return False
    return stream["pruned_through"] <= since


def verified_position(since, fp):
    """`since`, or None when the history this database keeps at `since` is not the one the
    client saw: its fingerprint differs (realtime/events.py `fingerprint`). That happens after
    a restore from a backup: numbers are issued again for other changes, and a delta on top
    of what the client holds would leave it stale for good. No fingerprint (an older client,
    or an entity that keeps no history) and no history kept at `since`: the position stands."""
    if since is None or fp is None:
        return since
    kept = changes.fingerprint_at(since)
    if kept is not None and kept != fp:
        metrics.POSITIONS_REFUSED.labels(reason="history").inc()
        log.warning("a client resumed from %s with a history this database does not hold (a restore?): "
                    "it gets a reset", since)
        return None
    return since


def _refuse_if_too_large():
    """A subscribe without a view builds the whole table: refused past REALTIME_MAX_STREAM_ROWS."""
    entity = registry.windowed()
    if entity is None:
        return
    found, complete = counts.read(entity)
    if not complete:
        total = entity.model._base_manager.count()
    else:
        total = sum(found.values())
    if total > settings.REALTIME_MAX_STREAM_ROWS:
        raise StreamTooLarge(
            f"the {entity.key} table holds {total:,} rows, more than REALTIME_MAX_STREAM_ROWS "
            f"({settings.REALTIME_MAX_STREAM_ROWS:,}): subscribe with a view (docs/protocol.md, \"Views\")"
        )


# Views -----------------------------------------------------------------------------------------


@dataclass
class ViewSeed:
    """What a view's sync reads from the database, all at number `head` (one snapshot)."""

    head: int
    epoch: str
    fp: str | None
    reset: bool  # the other entities' part is a reset (else a delta since the client's number)
    others: dict  # entity key -> {id: row} (rows changed since, or every row)
    deleted: dict  # entity key -> [ids deleted since] (a delta only)
    counts: dict | None = None  # rows per status of the windowed entity
    window: list | None = None  # [(row, encoded row)] newest first, when the view is seeded
    matched: int = 0
    sides: dict = field(default_factory=dict)  # name -> (side View, [rows], matched)


def build_view_seed(view, since, epoch, seed_window, sides):
    """Read, in one snapshot, the other entities (a delta since `since` or all of them) and,
    when `seed_window`, the view's window, `matched` and the counts; `sides` names the side
    sets to read too. Counts not yet complete are counted first (realtime/counts.py)."""
    entity = registry.windowed()
    if (seed_window or sides) and not counts.read(entity)[1]:
        recount(entity)
    with _snapshot_transaction():
        stream = Stream.objects.filter(pk=1).values("epoch", "head", "pruned_through").first()
        if stream is not None:
            return _view_seed(stream, entity, view, since, epoch, seed_window, sides)
    stream_position()
    return build_view_seed(view, since, epoch, seed_window, sides)


def _view_seed(stream, entity, view, since, epoch, seed_window, sides):
    head = stream["head"]
    reset = not _resumable(stream, since, epoch)
    others = [e for e in registry.entities() if e is not entity]
    rows, deleted = {}, {}
    for other in others:
        found = other.model._base_manager.all() if reset else other.model._base_manager.filter(version__gt=since)
        rows[other.key] = {row.pk: other.serializer(row) for row in in_pages(found)}
        deleted[other.key] = [] if reset else list(
            Tombstone.objects.filter(seq__gt=since, entity=other.name).order_by("seq").values_list("object_id", flat=True))
    seed = ViewSeed(head, stream["epoch"], changes.fingerprint_at(head), reset, rows, deleted)
    if seed_window or sides:
        seed.counts = counts.read(entity)[0]
    if seed_window:
        seed.window, seed.matched = _window_and_matched(entity, view, seed.counts)
    for name in sides:
        side = entity.views.side(name, entity.watched)
        rows, matched = _window_and_matched(entity, side, seed.counts)
        seed.sides[name] = (side, [row for row, _ in rows], matched)
    return seed


def in_pages(queryset, size=2000):
    """The rows of `queryset` by primary key, `size` at a time (memory stays bounded): one
    query for a small table, where `.iterator()` on PostgreSQL opens a server-side cursor
    (three round trips) for every socket's seed. Inside the snapshot transaction, the pages
    see one state."""
    last = None
    while True:
        page = list((queryset if last is None else queryset.filter(pk__gt=last)).order_by("pk")[:size])
        yield from page
        if len(page) < size:
            return
        last = page[-1].pk


def _window_and_matched(entity, view, per_status):
    """The newest matching rows (as many as the window holds) and how many match in all. A
    window read that comes back short has found every match: no count (for a title search,
    a second pass over the table) is needed."""
    capacity = view_capacity(view)
    rows = _newest(entity, view, capacity)
    return rows, len(rows) if len(rows) < capacity else entity.views.count(view, per_status)


def view_capacity(view):
    from .windows import reserve_for

    return view.limit + reserve_for(view.limit)


def _newest(entity, view, n, below=None):
    rows = [entity.serializer(obj) for obj in entity.views.newest(view, n, below)]
    return [(row, dumps(row)) for row in rows]


def read_window(view, below, want):
    """(head, rows): the `want` newest rows of `view` below id `below`, read in one snapshot
    at number `head` (a window's refill, realtime/windows.py)."""
    entity = registry.windowed()
    with _snapshot_transaction():
        head = Stream.objects.filter(pk=1).values_list("head", flat=True).first() or 0
        return head, [row for row, _ in _newest(entity, view, want, below)]

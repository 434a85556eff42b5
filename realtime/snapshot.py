"""Building the `sync` answer: a compact delta when the client's history is known, else a reset.

Runs in a worker thread (it reads the database). The head, the rows and the tombstones are
read in one transaction with a stable snapshot, so the answer is exactly the database at
sequence `seq` and the events after `seq` apply cleanly on top.
"""
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import registry
from .frames import dumps, sync_frames
from .models import Stream, Tombstone
from .rows import serialize


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


class HistoryMovedBack(Exception):
    """A client knows a later sequence number of this epoch than the database has: the
    database lost or rewound history (a restore, lost commits). The epoch must change."""


def build_sync(since, epoch):
    """Return (the encoded sync frames, head seq, whether it is a reset).

    A client ahead of the database in the same epoch proves that history moved backwards:
    the epoch is rotated first (every client then resets), and this client gets a reset."""
    try:
        return _build(since, epoch)
    except HistoryMovedBack:
        from .history import rotate_epoch

        rotate_epoch(f"a client had seen sequence {since} of epoch {epoch}, beyond the database head",
                     expected_epoch=epoch)
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
    same_epoch = since is not None and epoch == stream["epoch"]
    if same_epoch and since > head:
        raise HistoryMovedBack()
    entities = registry.entities()
    if same_epoch and stream["pruned_through"] <= since:
        keys = {entity.name: entity.key for entity in entities}
        deleted = {entity.key: [] for entity in entities}
        tombstones = Tombstone.objects.filter(seq__gt=since).order_by("seq").values_list("entity", "object_id")
        for name, object_id in tombstones.iterator(chunk_size=5000):
            if name in keys:
                deleted[keys[name]].append(object_id)
        rows = {e.key: _rows(e.model._base_manager.filter(version__gt=since).order_by("version")) for e in entities}
        texts = sync_frames(epoch=stream["epoch"], seq=head, reset=False, rows=rows, deleted=deleted, extras=extras)
        return texts, head, False
    key = (stream["epoch"], head, settings.REALTIME_MAX_SEND_BYTES)
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

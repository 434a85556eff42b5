"""Building the `sync` answer: a compact delta when the client's history is known, else a reset.

Runs in a worker thread (it reads the database). The head, the rows and the tombstones are
read in one transaction with a stable snapshot, so the answer is exactly the database at
sequence `seq` and the events after `seq` apply cleanly on top.
"""
import json
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import Stream, Tombstone
from .protocol import SYNC
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


def _sequenced_models():
    from tasks.models import Agent, Task

    return {"task": Task, "agent": Agent}


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


def encode_parts(frame):
    """Encode a sync as one frame, or as several when it is larger than
    REALTIME_SYNC_PART_BYTES (servers cap the size of a message they send: daphne at 1 MiB).

    The first part carries the reset flag and the deletions; every later part is a `sync`
    with `reset: false` and more rows at the same `seq`. A client that applies each as a
    sync ends equal to the database after the last one, and no event is sent in between.
    `part` and `parts` let a client wait for the last part before showing the state."""
    text = json.dumps(frame, separators=(",", ":"))
    count = -(-len(text) // settings.REALTIME_SYNC_PART_BYTES)
    if count <= 1:
        return [text]
    parts = []
    for index in range(count):
        part = dict(frame, tasks=frame["tasks"][index::count], agents=frame["agents"][index::count], part=index + 1, parts=count)
        if index:
            part.update(reset=False, deleted={"tasks": [], "agents": []})
        parts.append(json.dumps(part, separators=(",", ":")))
    return parts


def build_sync(since, epoch):
    """Return (the encoded sync frames, head seq, whether it is a reset)."""
    with _snapshot_transaction():
        stream = Stream.objects.filter(pk=1).values("epoch", "head", "pruned_through").first()
        if stream is not None:
            return _answer(stream, since, epoch)
    stream_position()  # a database emptied by `flush`: give it its stream row back first
    return build_sync(since, epoch)


def _answer(stream, since, epoch):
    """The sync for a client at (since, epoch); runs inside the snapshot transaction."""
    extras = {"heartbeat_interval": settings.REALTIME_HEARTBEAT_INTERVAL}
    head = stream["head"]
    known = since is not None and epoch == stream["epoch"] and stream["pruned_through"] <= since <= head
    models = _sequenced_models()
    if known:
        frame = {
            "type": SYNC, "epoch": stream["epoch"], "seq": head, "reset": False,
            "tasks": [serialize(r) for r in models["task"].objects.filter(version__gt=since).order_by("version")],
            "agents": [serialize(r) for r in models["agent"].objects.filter(version__gt=since).order_by("version")],
            "deleted": {"tasks": [], "agents": []},
            **extras,
        }
        tombstones = Tombstone.objects.filter(seq__gt=since).order_by("seq").values_list("entity", "object_id")
        for entity, object_id in tombstones:
            frame["deleted"][entity + "s"].append(object_id)
        return encode_parts(frame), head, False
    key = (stream["epoch"], head)
    texts = reset_cache.get(key)
    if texts is None:
        frame = {
            "type": SYNC, "epoch": stream["epoch"], "seq": head, "reset": True,
            "tasks": [serialize(r) for r in models["task"].objects.order_by("id")],
            "agents": [serialize(r) for r in models["agent"].objects.order_by("id")],
            "deleted": {"tasks": [], "agents": []},
            **extras,
        }
        texts = encode_parts(frame)
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

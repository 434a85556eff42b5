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
        self._text = None

    def get(self, key):
        with self._lock:
            return self._text if self._key == key else None

    def put(self, key, text):
        with self._lock:
            self._key, self._text = key, text


reset_cache = ResetCache()


def build_sync(since, epoch):
    """Return (text of the sync frame, head seq, whether it is a reset)."""
    extras = {"heartbeat_interval": settings.REALTIME_HEARTBEAT_INTERVAL}
    stream_position()  # a database emptied by `flush` gets its stream row back first
    with _snapshot_transaction():
        stream = Stream.objects.filter(pk=1).values("epoch", "head", "pruned_through").get()
        head = stream["head"]
        known = (
            since is not None
            and epoch == stream["epoch"]
            and stream["pruned_through"] <= since <= head
        )
        models = _sequenced_models()
        if known:
            frame = {
                "type": SYNC, "epoch": stream["epoch"], "seq": head, "reset": False,
                "tasks": [serialize(r) for r in models["task"].objects.filter(version__gt=since).order_by("version")],
                "agents": [serialize(r) for r in models["agent"].objects.filter(version__gt=since).order_by("version")],
                "deleted": {"tasks": [], "agents": []},
                **extras,
            }
            for entity, object_id in Tombstone.objects.filter(seq__gt=since).order_by("seq").values_list("entity", "object_id"):
                frame["deleted"][entity + "s"].append(object_id)
            return json.dumps(frame, separators=(",", ":")), head, False
        key = (stream["epoch"], head)
        text = reset_cache.get(key)
        if text is None:
            frame = {
                "type": SYNC, "epoch": stream["epoch"], "seq": head, "reset": True,
                "tasks": [serialize(r) for r in models["task"].objects.order_by("id")],
                "agents": [serialize(r) for r in models["agent"].objects.order_by("id")],
                "deleted": {"tasks": [], "agents": []},
                **extras,
            }
            text = json.dumps(frame, separators=(",", ":"))
            reset_cache.put(key, text)
        return text, head, True


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

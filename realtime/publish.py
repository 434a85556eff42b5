"""Publishing: the one place where changes leave a process.

Every change to the stream goes through `after_commit()`: the sequencing code calls it with
the events of one write, and it hands them to the Channels group layer only once the
transaction has committed (never inside it, so no client sees a change that rolls back).
Each process's hub (realtime/hub.py) is the group's member and fans the events out.
"""
import logging
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import metrics
from .protocol import LAYER_CHANGES, STREAM_GROUP

log = logging.getLogger("realtime.publish")


def after_commit(epoch, events, using="default"):
    """Publish `events` (already serialised, in sequence order) once this transaction commits."""
    if events:
        transaction.on_commit(partial(send_now, epoch, events), using=using)


def send_now(epoch, events):
    """Send events to every process. A failure is logged, not raised: the change is committed,
    and clients find the missing numbers through the heartbeat's `seq` and resynchronise."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(STREAM_GROUP, {"type": LAYER_CHANGES, "epoch": epoch, "events": events})
        metrics.PUBLISHED.inc(len(events))
    except Exception as exc:  # Redis down, layer full: the sequence numbers heal it
        metrics.PUBLISH_FAILURES.inc()
        log.warning("publish failed for seq %s-%s: %s", events[0]["seq"], events[-1]["seq"], exc)

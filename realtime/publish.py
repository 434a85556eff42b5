"""Publishing: the one place where changes leave a process.

Every change to the stream goes through `after_commit()`: the sequencing code calls it with
the events of one write, and they are published only once the transaction has committed
(never inside it, so no client sees a change that rolls back).

Where they go:
- In a server process (one whose hub is running), the writer thread hands them to the event
  loop and returns at once: the local hub takes them directly (so this process's dashboards
  see them even while Redis is away) and `group_send` tells the other processes. A writer
  never waits for a busy loop.
- In any other process (a management command, a shell, a worker), one long-lived publisher
  thread with its own loop sends them, in order, over one Redis connection.
A message lost on the way is healed by the sequence numbers: hubs compare with the
database head every second and clients resubscribe. A write of many rows goes out as
several layer messages of at most LAYER_CHUNK events (Redis disconnects a pub/sub reader
whose output buffer grows past its limit, 32 MB by default).

`send_control()` takes the other kind of message, access changes (realtime/access.py),
down the same path.
"""
import asyncio
import logging
import threading
from functools import partial

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from . import metrics
from .events import changes_message
from .protocol import LAYER_ACCESS, LAYER_CHANGES, STREAM_GROUP

log = logging.getLogger("realtime.publish")

LAYER_CHUNK = 2000
WARM_GROUP = "stream-warm"  # nobody listens: connect() sends here

# The server process's own hub, when there is one: (its event loop, its `on_layer_message`).
# The hub registers itself when it starts (`serve_locally`); publishing never imports it.
_local = None


def serve_locally(loop, receive):
    """Called by a server process's hub when it starts: its changes go to `receive` first."""
    global _local
    _local = (loop, receive)


def _local_sink():
    if _local is None:
        return None
    loop, receive = _local
    if loop.is_closed() or not loop.is_running():
        return None
    return _local


def after_commit(epoch, events, using="default"):
    """Publish `events` (Event objects, realtime/events.py, in sequence order) once this
    transaction commits."""
    if events:
        transaction.on_commit(partial(send_now, epoch, events), using=using)


def send_now(epoch, events):
    """Send committed events to every hub. Never raises: a change is committed whatever
    happens to its message."""
    for start in range(0, len(events), LAYER_CHUNK):
        _send(changes_message(epoch, events[start:start + LAYER_CHUNK]))


def connect():
    """Open this process's connection to the layer now, so that its first change does not
    wait for it (about 0.1 s on loopback: the publisher's loop thread, channels-redis's
    imports, the connection). For a worker about to write; never needed for correctness."""
    layer = get_channel_layer()
    if layer is not None and _local_sink() is None and not isinstance(layer, InMemoryChannelLayer):
        publisher.send(layer, {"type": LAYER_ACCESS, "warm": True}, group=WARM_GROUP)


def send_control(payload):
    """Tell every hub about an access change (payload: see realtime/access.py). Never raises."""
    _send({"type": LAYER_ACCESS, **payload})


def _send(message):
    layer = get_channel_layer()
    if layer is None:
        return
    sink = _local_sink()
    if sink is not None:
        loop, receive = sink
        loop.call_soon_threadsafe(_publish_in_server, layer, receive, message)
    elif not isinstance(layer, InMemoryChannelLayer):  # in-process layer: nobody else to tell
        publisher.send(layer, message)


def _publish_in_server(layer, receive, message):
    """On the server's loop: the local hub first, then the other processes."""
    asyncio.ensure_future(receive(message))
    if isinstance(layer, InMemoryChannelLayer):
        _count_sent(message)
        return
    task = asyncio.ensure_future(layer.group_send(STREAM_GROUP, message))
    task.add_done_callback(partial(_count, message))


def _count_sent(message):
    if message["type"] == LAYER_CHANGES:
        metrics.PUBLISHED.inc(len(message["events"]))


def _count(message, task):
    exc = None if task.cancelled() else task.exception()
    if exc is None:
        _count_sent(message)
    else:  # Redis down: the sequence numbers (and the access re-checks) heal it
        _failed(message, exc)


def _failed(message, exc):
    metrics.PUBLISH_FAILURES.inc()
    if message["type"] == LAYER_CHANGES:
        events = message["events"]
        log.warning("publish failed for seq %s-%s: %s", events[0]["seq"], events[-1]["seq"], exc)  # wire dicts
    else:
        log.warning("publish of an access change failed: %s", exc)


class Publisher:
    """A loop thread for processes without one: one connection, messages in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = None

    def _running_loop(self):
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="publisher", daemon=True).start()
            return self._loop

    def send(self, layer, message, group=STREAM_GROUP):
        """Send and wait (at most 10 s) so that the caller's changes go out in order."""
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), self._running_loop())
        try:
            future.result(timeout=10)
            _count_sent(message)
        except Exception as exc:
            future.cancel()
            _failed(message, exc)


publisher = Publisher()

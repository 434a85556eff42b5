"""`capture_published(expected=n)`: the events a block of code publishes, after its commit.

    with capture_published(expected=2) as events:
        domain.cancel(task_id=task.pk)
    assert [(e["entity"], e["op"]) for e in events] == [("task", "upsert"), ("agent", "upsert")]

The events are what realtime/publish.py would hand to the channel layer (the layer is not
used); on_commit callbacks run when the block ends, as if its transactions committed.
A test states exactly which events an action produces.
"""
from contextlib import contextmanager
from unittest import mock

from django.test import TestCase

from realtime import publish
from realtime.protocol import LAYER_CHANGES


@contextmanager
def capture_published(expected=None):
    events = []

    def keep(message):
        if message["type"] == LAYER_CHANGES:
            events.extend(message["events"])

    with mock.patch.object(publish, "_send", keep), TestCase.captureOnCommitCallbacks(execute=True):
        yield events
    events.sort(key=lambda e: e["seq"])
    if expected is not None:
        assert len(events) == expected, f"expected {expected} events, got {len(events)}: {events}"

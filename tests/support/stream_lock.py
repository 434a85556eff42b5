"""Hold the change stream's lock from a test, so every sequenced write a server receives waits."""
import threading
from concurrent.futures import ThreadPoolExecutor


class StreamLockHeld:
    """The test holds the stream lock in a thread of its own until `release()`, so every
    sequenced write that reaches the server waits for it (holding its thread and connection)."""

    def __init__(self):
        self._held, self._release = threading.Event(), threading.Event()
        self._pool = ThreadPoolExecutor(1)
        self._holder = self._pool.submit(self._hold)
        assert self._held.wait(30), "the test could not take the stream lock"

    def _hold(self):
        from django.db import connection, transaction

        from realtime.sequencing import lock_stream  # after Django's setup

        try:
            with transaction.atomic():
                lock_stream()
                self._held.set()
                assert self._release.wait(300), "the test never released the stream lock"
        finally:
            connection.close()

    def release(self):
        if not self._release.is_set():
            self._release.set()
            self._holder.result(30)
            self._pool.shutdown()

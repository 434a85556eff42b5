"""Hold a database lock from a test, in a thread of its own: the change stream's (so every
sequenced write a server receives waits), or whatever rows a test locks."""
import threading
from concurrent.futures import ThreadPoolExecutor


class LockHeld:
    """The test holds what `take()` locks, in a transaction open in a thread of its own, until
    `release()` (or the end of a `with` block)."""

    def __init__(self, take, what="the lock"):
        self._take, self._what = take, what
        self._held, self._release = threading.Event(), threading.Event()
        self._pool = ThreadPoolExecutor(1)
        self._holder = self._pool.submit(self._hold)
        assert self._held.wait(30), f"the test could not take {what}"

    def _hold(self):
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                self._take()
                self._held.set()
                assert self._release.wait(300), f"the test never released {self._what}"
        finally:
            connection.close()

    def release(self):
        if not self._release.is_set():
            self._release.set()
            self._holder.result(30)
            self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class StreamLockHeld(LockHeld):
    """The stream lock: every sequenced write that reaches the server waits for it (holding
    its thread and connection)."""

    def __init__(self):
        from realtime.sequencing import lock_stream  # after Django's setup

        super().__init__(lock_stream, "the stream lock")

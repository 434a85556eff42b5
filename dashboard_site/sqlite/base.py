"""SQLite with an in-process queue for the write lock.

Every transaction here is `BEGIN IMMEDIATE` (it takes SQLite's write lock up front). When
several request threads of one server write at once, SQLite makes the losers poll: its busy
handler sleeps 1, 2, 5, 10, ... up to 100 ms between tries, so a writer can sleep on past
the moment the lock came free. Here the threads of one process queue on a lock of their
own before `BEGIN`, and each is woken the moment the previous writer commits or rolls back.
Writers in other processes (a shell, a management command) still meet SQLite's busy
timeout, which stays the final word.

Measured together with the rest of the request-path change (bench/scenarios/agentapi.py, 8
agents' reports, one run on a loaded machine) the p99 moved, the throughput did not: 180 ms
against 396 ms, 93 against 91 reports/s on daphne.

The wait is bounded by the same timeout as SQLite's (OPTIONS["timeout"], which settings.py
takes from REALTIME_STREAM_LOCK_TIMEOUT) and ends in the same "database is locked" error.
"""
import threading

from django.db import OperationalError
from django.db.backends.sqlite3 import base

# One per process and database file: writers of different databases do not wait for each other.
_write_locks = {}
_write_locks_guard = threading.Lock()


def _write_lock(name):
    with _write_locks_guard:
        return _write_locks.setdefault(str(name), threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

    def _start_transaction_under_autocommit(self):
        lock = _write_lock(self.settings_dict["NAME"])
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5.0))
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (another thread of this process held the write lock)")
        self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self):
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock(self.settings_dict["NAME"]).release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()

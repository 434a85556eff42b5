"""Where the stream's database work runs: small thread pools of its own, one per kind of work.

Channels runs every `database_sync_to_async` call, and Django every synchronous view, on one
shared thread. Had the stream used it too, a stalled database would hold up everything
behind the stalled query: with Channels' own consumer dispatch even a `pong` waits there
(`aclose_old_connections()` before every handler), and healthy sockets were closed with
4008 during a six-second PostgreSQL outage. So the stream's work never touches that thread:

- "access": authenticating sockets and re-checking their access (realtime/access.py);
- "sync": building `sync` answers, REALTIME_MAX_CONCURRENT_SYNCS at a time per process;
- "head": the hub's once-a-second read of the stream head;
- "jobs": the periodic jobs (tombstone pruning, the liveness sweep).

A slow job cannot delay the head check, a storm of syncs cannot delay authentication, and
none of them delays a ping, a pong or a close, which never touch the database.
Each pool's threads keep their own database connection; like Channels, connections past
their age are closed before and after each call.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_pools = {}
_lock = threading.Lock()


def _size(kind):
    return settings.REALTIME_MAX_CONCURRENT_SYNCS if kind == "sync" else 2 if kind == "access" else 1


def pool(kind):
    """The thread pool for `kind` ("access", "sync", "head" or "jobs"), made on first use."""
    size = _size(kind)
    with _lock:
        executor = _pools.get((kind, size))
        if executor is None:
            executor = _pools[(kind, size)] = ThreadPoolExecutor(size, thread_name_prefix=f"stream-{kind}")
        return executor


async def run(kind, func, *args, **kwargs):
    """Run the sync function `func` in the `kind` pool and await its result."""
    call = DatabaseSyncToAsync(func, thread_sensitive=False, executor=pool(kind))
    return await call(*args, **kwargs)

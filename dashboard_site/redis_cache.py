"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per async context, and under ASGI every request is a context of
its own: each request built a new RedisCache, with a new connection pool and so a new Redis
connection (and redis-py reads its own package metadata for every new connection). The
agents' rate limit reads and writes the cache on every API request, so on the scale-out
configuration that was about a fifth of the server's time per progress report
(bench/findings.md, finding 10). redis-py's pools are thread-safe: every cache object of
the process shares one per server URL.
"""
import threading

import redis

_pools = {}
_guard = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    @classmethod
    def from_url(cls, url, **kwargs):
        key = (url, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        with _guard:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
            return pool

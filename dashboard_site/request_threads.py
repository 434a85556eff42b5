"""Django's HTTP requests on a fixed set of threads that keep their database connections.

Django's ASGIHandler runs the synchronous parts of each request (sync middleware, the view)
on a thread started for that request: asgiref's ThreadSensitiveContext gives every request a
new one-thread executor and stops it at the end. Database connections belong to a thread, so
under ASGI every request also opened a new database connection (CONN_MAX_AGE never got a
second use) and started and joined a thread. For an agent's progress report that was about
a fifth of the server's busy samples on SQLite (bench/findings.md, finding 10), and a new
PostgreSQL connection per request on the scale-out configuration.

Here a request borrows one of REQUEST_THREADS long-lived one-thread executors for its whole
life: its synchronous parts still run on one thread, as Django requires, and no other
request runs on that thread meanwhile, exactly as under a threaded WSGI server, so
connections are reused and closed by Django's own rules (CONN_MAX_AGE, health checks, at
the end of each request on error). When every thread is lent out, a request gets a thread of
its own, as before: a slow client or a burst never waits for a free thread.
"""
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler


class PooledThreadsASGIHandler(ASGIHandler):
    def __init__(self, threads):
        super().__init__()
        # A stack: the most recently used thread (and its warm connection) goes out first.
        self._idle = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{i}") for i in range(threads)]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self._idle:
            return await super().__call__(scope, receive, send)
        executor = self._idle.pop()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._idle.append(executor)


def get_asgi_application():
    """django.core.asgi.get_asgi_application, on REQUEST_THREADS pooled threads (0: Django's
    own thread per request)."""
    import django
    from django.conf import settings

    django.setup(set_prefix=False)
    threads = getattr(settings, "REQUEST_THREADS", 0)
    return PooledThreadsASGIHandler(threads) if threads else ASGIHandler()

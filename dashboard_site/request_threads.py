"""Django's HTTP requests in one crossing to a long-lived thread that keeps its database
connection.

Django's ASGIHandler runs a request's synchronous parts on a thread started for that request
(asgiref's ThreadSensitiveContext gives each request a new one-thread executor and stops it
at the end), and it crosses between the event loop and that thread three times: for the
`request_started` receivers, for the view, and for `response.close()` (`request_finished`).
Each crossing waits for the other side to hand over the GIL, which a busy event loop does
only every few milliseconds; and a new thread per request is a new database connection per
request, since connections belong to a thread (CONN_MAX_AGE never got a second use). For an
agent's progress report that was most of the server's time (bench/findings.md, finding 10).

Here a request (other than a static file) borrows one of REQUEST_THREADS long-lived
one-thread executors and runs whole in one call on it, as under a threaded WSGI server:
`request_started`, the middleware (their synchronous side; every one has both), the view and,
for a response already in memory, `close()`. No other request runs on that thread meanwhile,
so Django's per-request rules hold (it reuses and closes connections by CONN_MAX_AGE, health
checks and errors). When every thread is lent out, a request gets a thread of its own, as
Django does: a burst never waits for a free thread. Such a thread opens a database connection
of its own, closed when the request ends, and at most REQUEST_OVERFLOW requests run that way
at once: past that the answer is 503 with Retry-After at once (JSON under /api/, a short
plain page elsewhere), so that requests held up by a long stream-lock wait cannot open
connections without end and exhaust the database's (docs/deploy.md, "Database
connections"). Static files take Django's own asynchronous path, whose middleware run on the
loop (dashboard_site/static_files.py). Reading the body and sending the answer stay on the
loop.
"""
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi, base
from django.db import connections
from django.http import FileResponse, HttpResponse
from django.urls import set_script_prefix

log = logging.getLogger("dashboard_site.requests")

RETRY_AFTER = "2"  # seconds, on a 503 for a request past the overflow
BUSY = "The server is busy: its request threads and overflow are all in use. Retry after the Retry-After seconds."
BUSY_LOG_EVERY = 10.0  # seconds between the warnings while requests are being refused

# What this handler uses of Django's ASGIHandler (tested with Django 5.2): checked at start,
# so a Django that renamed one falls back to Django's own request path, loudly.
DJANGO_PARTS = ("read_body", "create_request", "send_response", "chunk_size", "handle")


class RequestHandler(asgi.ASGIHandler):
    def __init__(self, threads, static_url, overflow=0):
        super().__init__()  # Django's asynchronous middleware chain: static files, fallback
        self._sync = base.BaseHandler()
        self._sync.load_middleware(is_async=False)
        self._static = static_url
        # A stack: the most recently used thread (and its warm connection) goes out first.
        self._idle = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{i}") for i in range(threads)]
        self._threads, self._overflow_limit = threads, overflow
        self.overflowing = 0  # requests running on threads of their own now
        self._refused, self._refused_logged_at = 0, None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self._static):
            return await super().__call__(scope, receive, send)
        if self._idle:
            executor = self._idle.pop()
            try:
                async with ThreadSensitiveContext(executor=executor):
                    await self._handle(scope, receive, send)
            finally:
                self._idle.append(executor)
        elif self.overflowing < self._overflow_limit:
            self.overflowing += 1
            try:
                async with ThreadSensitiveContext():  # a new thread, as Django does
                    try:
                        await self._handle(scope, receive, send)
                    finally:  # the thread ends with the request: so does its connection
                        await sync_to_async(connections.close_all, thread_sensitive=True)()
            finally:
                self.overflowing -= 1
        else:
            await self._refuse(scope, send)

    async def _refuse(self, scope, send):
        """503 for a request past the overflow, made on the loop: no thread, no database."""
        self._refused += 1
        now = time.monotonic()
        if self._refused_logged_at is None or now - self._refused_logged_at >= BUSY_LOG_EVERY:
            log.warning("request threads and overflow are all busy (%d + %d): answered 503 to %d request(s), "
                        "the latest %s %s", self._threads, self._overflow_limit,
                        self._refused, scope.get("method"), scope.get("path"))
            self._refused, self._refused_logged_at = 0, now
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/"):
            response = HttpResponse(json.dumps({"detail": BUSY}), status=503, content_type="application/json")
        else:
            response = HttpResponse(BUSY + "\n", status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = RETRY_AFTER
        await self.send_response(response, send)

    async def _handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(asgi.get_script_prefix(scope))
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                await sync_to_async(error_response.close)()
                return
            response = await sync_to_async(self._respond, thread_sensitive=True)(request, scope)
            await self.send_response(response, send)
            if response.streaming:  # its body was read while it was sent: close it now
                await sync_to_async(response.close)()
        finally:
            body_file.close()

    def _respond(self, request, scope):
        """The whole request, on the borrowed thread."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        response = self._sync.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # the ASGI server chunks; as Django does
        if not response.streaming:
            response.close()  # request_finished, on this thread: the body is already in memory
        return response


def get_asgi_application():
    """django.core.asgi.get_asgi_application, with requests on REQUEST_THREADS threads and at
    most REQUEST_OVERFLOW more (REQUEST_THREADS 0: Django's own thread per request, no limit)."""
    import django
    from django.conf import settings

    django.setup(set_prefix=False)
    threads = getattr(settings, "REQUEST_THREADS", 0)
    if not threads:
        return asgi.ASGIHandler()
    missing = [name for name in DJANGO_PARTS if not hasattr(asgi.ASGIHandler, name)]
    if missing:
        log.error("Django's ASGIHandler has no %s: requests take Django's own path (a thread and "
                  "a database connection each); check dashboard_site/request_threads.py", ", ".join(missing))
        return asgi.ASGIHandler()
    return RequestHandler(threads, settings.STATIC_URL, getattr(settings, "REQUEST_OVERFLOW", 0))

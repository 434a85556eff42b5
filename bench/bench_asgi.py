"""Bench-only ASGI wrapper: the project's application plus a write endpoint in its process.

    daphne bench.bench_asgi:application      (never deploy this: it writes on GET)

With the in-process channel layer, a write made by another process reaches the sockets only
through the hub's one-second head poll; the embedded default's writes happen inside the
server (the agents' HTTP API). So the benchmarks drive writes here:

    GET /bench/write?n=100&rate=0&rows=50&threads=1  ->  {"stamps": [[seq, t], ...], ...}
    GET /bench/state                                 ->  {"head", "epoch", "tasks", "agents"}
    GET /bench/window?view={...}                     ->  {"head", "tasks" of the window, "counts", "agents"}

`newest=1` writes to the newest tasks (inside the default view's window) instead of the oldest.
Each write is a real sequenced `save()` (commit, then publish through the layer to the hub),
run in a worker thread like a Django view; `t` is time.monotonic() just after its COMMIT.
Everything else goes to dashboard_site.asgi.application unchanged.
"""
import asyncio
import json
import os
import time
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_site.settings")

from asgiref.sync import sync_to_async  # noqa: E402

if os.environ.get("BENCH_REQUEST_PATH") == "before":
    # The agentapi scenario's reference: the request path as it was before it was made cheap.
    # Set before the ASGI handler loads the middleware.
    from django.conf import settings

    settings.REQUEST_THREADS = 0  # a thread, a database connection and three crossings per request
    settings.MIDDLEWARE = ["whitenoise.middleware.WhiteNoiseMiddleware" if m.endswith("StaticFilesMiddleware") else m
                           for m in settings.MIDDLEWARE]  # WhiteNoise's synchronous middleware
    if settings.DATABASES["default"]["ENGINE"] == "dashboard_site.sqlite":
        settings.DATABASES["default"]["ENGINE"] = "django.db.backends.sqlite3"  # no in-process write queue
    settings.CACHES["default"].pop("OPTIONS", None)  # a Redis connection per request (scale-out)

    import django

    django.setup()
    from tasks import domain, report_batch

    # Every report in a transaction of its own.
    report_batch.submit = lambda agent_id, task_id, progress: domain.report(
        agent_id=agent_id, task_id=task_id, progress=progress)

if os.environ.get("BENCH_DAPHNE_WRITES") == "buffered":
    # Reference for the fan-out on daphne: Twisted's own buffered write per frame
    # (realtime/daphne_compat.py, adjustment 4, not installed).
    from realtime import daphne_compat

    daphne_compat._patch_eager_writes = lambda protocol: None

from dashboard_site.asgi import application as project_application  # noqa: E402

if os.environ.get("BENCH_TRACE"):
    from bench import trace  # the hub's arrivals and the collections, for bench/trace.py

    trace.install(os.environ["BENCH_TRACE"])

from bench import djwork  # noqa: E402


async def _respond(send, status, payload):
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def bench_endpoint(scope, receive, send):
    while True:  # drain the request body
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    try:
        if scope["path"] == "/bench/write":
            n, rows = int(query.get("n", 1)), int(query.get("rows", 50))
            rate, threads = float(query.get("rate", 0)), int(query.get("threads", 1))
            t0 = time.monotonic()
            newest = query.get("newest") == "1"
            parts = await asyncio.gather(*[
                sync_to_async(djwork.write_changes, thread_sensitive=False)(
                    n // threads, rate / threads, rows, k * rows, newest)
                for k in range(threads)
            ])
            elapsed = time.monotonic() - t0
            stamps = sorted(s for part in parts for s in part)
            return await _respond(send, 200, {"stamps": stamps, "start": t0, "elapsed": elapsed})
        if scope["path"] == "/bench/state":
            return await _respond(send, 200, await sync_to_async(djwork.state, thread_sensitive=False)())
        if scope["path"] == "/bench/window":
            view = json.loads(query.get("view", "{}"))
            return await _respond(send, 200, await sync_to_async(djwork.window_state, thread_sensitive=False)(view))
        return await _respond(send, 404, {"error": "unknown bench path"})
    except Exception as exc:  # the driver prints this
        return await _respond(send, 500, {"error": f"{type(exc).__name__}: {exc}"})


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/bench/"):
        return await bench_endpoint(scope, receive, send)
    return await project_application(scope, receive, send)

"""Server-rendered pages and the health check."""
import asyncio
import uuid
import weakref

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_required, permission_required
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .models import Agent, Task

INITIAL_TASK_ROWS = 100


@never_cache
@login_required
@permission_required("tasks.view_task", raise_exception=True)
def dashboard(request):
    """The live dashboard. The first rows are rendered here so the page is useful at once;
    the client then subscribes and replaces them with the full, live state."""
    counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).order_by())
    agent_counts = dict(Agent.objects.values_list("status").annotate(n=Count("id")).order_by())
    running = {
        t.agent_id: t for t in Task.objects.filter(status=Task.Status.RUNNING, agent__isnull=False)
        .order_by("started_at", "id")  # the latest start wins, as in Agent.current_task
        .only("id", "title", "agent_id")
    }
    agents = list(Agent.objects.all())
    for agent in agents:
        agent.running_task = running.get(agent.pk)
    context = {
        "task_counts": [(value, label, counts.get(value, 0)) for value, label in Task.Status.choices],
        "agent_counts": [(value, label, agent_counts.get(value, 0)) for value, label in Agent.Status.choices],
        "total_tasks": sum(counts.values()),
        "agents": agents,
        # Newest first, the order the live client keeps (updates never move a row), so the
        # first sync takes over these rows without any of them jumping.
        "tasks": Task.objects.select_related("agent").order_by("-created_at", "-id")[:INITIAL_TASK_ROWS],
        "agent_names": {a.pk: a.name for a in agents},
    }
    return render(request, "dashboard/index.html", context)


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


_health_channels = weakref.WeakKeyDictionary()  # event loop -> this process's probe channel


def _check_layer():
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip():
        # One probe channel per process, reused: with the pub/sub layer every new channel
        # is a Redis subscription that would outlive the probe.
        loop = asyncio.get_running_loop()
        channel = _health_channels.get(loop)
        if channel is None:
            channel = _health_channels[loop] = await layer.new_channel()  # default prefix: see realtime/hub.py
        nonce = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.check", "nonce": nonce})
        async with asyncio.timeout(2):
            while (await layer.receive(channel)).get("nonce") != nonce:
                pass  # the answer to an earlier probe that timed out

    async_to_sync(roundtrip)()
    return type(layer).__name__


@never_cache
def healthz(request):
    """200 when the database and the channel layer answer, else 503 naming what failed."""
    checks, ok = {}, True
    for name, check in (("database", _check_database), ("channel_layer", _check_layer)):
        try:
            detail = check()
            checks[name] = {"ok": True, **({"backend": detail} if detail else {})}
        except Exception as exc:
            ok = False
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


@never_cache
def metrics(request):
    """Prometheus metrics of the process that answers (scrape every process).

    Open to loopback, staff sessions, and `Authorization: Bearer $METRICS_TOKEN` when set."""
    token = settings.METRICS_TOKEN
    allowed = (
        request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")
        or (request.user.is_authenticated and request.user.is_staff)
        or (token and constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"))
    )
    if not allowed:
        return JsonResponse({"detail": "metrics need a staff session or the METRICS_TOKEN bearer token"}, status=403)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

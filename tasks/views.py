"""Server-rendered pages and the health check."""
import asyncio
import logging
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
from django.urls import NoReverseMatch, reverse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .domain import current_tasks
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
    running = current_tasks()
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
        # Cancel and requeue go through the operator API, which wants staff and change_task:
        # only then does the page draw the controls (the API still checks every request).
        "can_change": request.user.is_staff and request.user.has_perm("tasks.change_task"),
        "task_detail_pattern": _task_detail_pattern(),
    }
    return render(request, "dashboard/index.html", context)


def _task_detail_pattern():
    """The task page's URL with 0 for the id (the client puts each row's id in)."""
    try:
        return reverse("task_detail", args=[0])
    except NoReverseMatch:
        return "/tasks/0/"  # the contract's path (DESIGN.md), before that page is routed


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


health_log = logging.getLogger("tasks.health")


def _is_staff(request):
    """A signed-in staff user. False when that cannot be known: with the database down the
    session and the user cannot be read, and the caller counts as anonymous."""
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_staff)
    except Exception:
        return False


@never_cache
def healthz(request):
    """200 when the database and the channel layer answer, else 503 naming what failed.

    Anonymous callers (load balancers, the outside world) learn only which part failed, never
    what the parts are; a staff session also gets the channel layer's class and the error
    text. Each failure is logged once, with its traceback, on the "tasks.health" logger."""
    checks, ok = {}, True
    for name, check in (("database", _check_database), ("channel_layer", _check_layer)):
        try:
            detail = check()
            checks[name] = {"ok": True, **({"backend": detail} if detail and _is_staff(request) else {})}
        except Exception as exc:
            ok = False
            health_log.error("health check %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)
            checks[name] = {"ok": False}
            if _is_staff(request):
                checks[name]["error"] = f"{type(exc).__name__}: {exc}"
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


LOOPBACK = ("127.0.0.1", "::1")
# Any of these means a proxy relayed the request. From a trusted proxy (DJANGO_TRUSTED_PROXIES)
# REMOTE_ADDR is then the client's address (dashboard_site/proxy.py), which may itself be
# loopback; from anyone else it is the peer's and the header is the peer's claim. Either way
# the request is not a direct local one, so no forwarding header may be present.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _metrics_allowed(request):
    """The token when one is set; else a staff session, or a direct loopback request."""
    token = settings.METRICS_TOKEN
    if token:
        # Always the token: behind a proxy every request comes from loopback, so the address
        # proves nothing, and a scraper has no session.
        return constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}")
    if _is_staff(request):
        return True
    return request.META.get("REMOTE_ADDR") in LOOPBACK and not any(h in request.META for h in PROXY_HEADERS)


@never_cache
def metrics(request):
    """Prometheus metrics of the process that answers (scrape every process).

    With METRICS_TOKEN set, only `Authorization: Bearer $METRICS_TOKEN` opens it. Without
    one, staff sessions do, and loopback requests that no proxy relayed (no X-Forwarded-For,
    X-Forwarded-Proto, Forwarded or X-Real-IP header). The nginx site in deploy/ refuses
    /metrics outright: each process is scraped on its own port. `manage.py check --deploy` warns when DEBUG is off and no
    token is set."""
    if not _metrics_allowed(request):
        detail = ("metrics need the METRICS_TOKEN bearer token" if settings.METRICS_TOKEN
                  else "metrics need a staff session (or a direct loopback request)")
        return JsonResponse({"detail": detail}, status=403)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

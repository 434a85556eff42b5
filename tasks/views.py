"""Server-rendered pages and the health check."""
import asyncio
import logging
import re
import uuid
import weakref

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_required, permission_required
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from realtime import counts, registry
from realtime.sequencing import recount
from realtime.viewspec import ViewError

from .selectors import current_tasks
from .models import Agent, Task

INITIAL_TASK_ROWS = 100  # rows rendered into the first paint; the live window follows
OLDER_PAGE = 200  # older rows per request, by default


def _window_entity():
    """The entity dashboards hold a window of (the tasks), from the stream's registry."""
    entity = registry.windowed()
    if entity is None:
        raise ImproperlyConfigured("no streamed entity is registered with views; tasks.apps registers Task with one")
    return entity


def view_from_query(query, entity):
    """The view of the tasks a query string asks for, parsed by the server's own rules
    (tasks/windows.py): `status` (repeated or comma-separated), `agent`, `q`, `limit`.
    Raises ViewError naming the parameter at fault."""
    raw = {"current": True}
    statuses = [s.strip() for value in query.getlist("status") for s in value.split(",") if s.strip()]
    if statuses:
        raw["status"] = statuses
    for name in ("agent", "limit"):
        value = query.get(name, "").strip()
        if value:
            if not value.isdigit() or len(value) > 18:
                raise ViewError(f"view.{name} must be a positive integer, not {value!r}")
            raw[name] = int(value)
    if query.get("q", "").strip():
        raw["q"] = query["q"]
    return entity.views.parse(raw, entity.watched)


def _field_of(error):
    """The query parameter a ViewError is about ("view.status must ..." -> "status")."""
    match = re.match(r"view\.(\w+)", str(error))
    return match.group(1) if match else "view"


def task_counts(entity):
    """Tasks per status over the whole table, from the counters the writers keep
    (realtime/counts.py): never a COUNT over the table, unless the counters are incomplete."""
    found, complete = counts.read(entity)
    if not complete:
        recount(entity)
        found, _ = counts.read(entity)
    return found


@never_cache
@login_required
@permission_required("tasks.view_task", raise_exception=True)
def dashboard(request):
    """The live dashboard. The first paint is the view the URL asks for (filters, newest first,
    its limit), rendered here so the page is useful at once; the client then subscribes with
    the same view and applies its live window on top."""
    entity = _window_entity()
    view_error = None
    try:
        view = view_from_query(request.GET, entity)
    except ViewError as exc:
        view_error = str(exc)
        view = entity.views.parse({"current": True}, entity.watched)
    found = task_counts(entity)
    tasks = entity.views.newest(view, min(view.limit, INITIAL_TASK_ROWS))
    agents = list(Agent.objects.all())
    names = {a.pk: a.name for a in agents}
    for task in tasks:
        task.agent_name = names.get(task.agent_id)  # no query per row
    running = current_tasks()
    agent_counts = {}
    for agent in agents:
        agent.running_task = running.get(agent.pk)
        agent_counts[agent.status] = agent_counts.get(agent.status, 0) + 1
    context = {
        "task_counts": [(value, label, found.get(value, 0)) for value, label in Task.Status.choices],
        "agent_counts": [(value, label, agent_counts.get(value, 0)) for value, label in Agent.Status.choices],
        "total_tasks": sum(found.values()),
        "matched": entity.views.count(view, found),
        "agents": agents,
        "tasks": tasks,
        "view": view.echo,
        "view_error": view_error,
        "selected_statuses": view.echo["status"] or [],
        "rendered_at": timezone.now(),
        # Cancel and requeue go through the operator API, which wants staff and change_task:
        # only then does the page draw the controls (the API still checks every request).
        "can_change": request.user.is_staff and request.user.has_perm("tasks.change_task"),
        "task_detail_pattern": _task_detail_pattern(),
    }
    return render(request, "dashboard/index.html", context)


@never_cache
@login_required
@permission_required("tasks.view_task", raise_exception=True)
def older_tasks(request):
    """Rows older than the live window, on request: the tasks of the view the parameters name
    (`status`, `agent`, `q`) with an id below `before`, newest first, `limit` of them (default
    200, at most 1000). Not live: the page shows them apart and marked so. A bad parameter is
    a 400 naming it: {"errors": {"before": ["..."]}}."""
    entity = _window_entity()
    errors = {}
    before = request.GET.get("before", "").strip()
    if not before.isdigit() or len(before) > 18 or int(before) < 1:
        errors["before"] = ["before must be a task id (a positive integer): the rows returned have lower ids"]
    query = request.GET.copy()
    query.setdefault("limit", str(OLDER_PAGE))
    try:
        view = view_from_query(query, entity)
    except ViewError as exc:
        errors.setdefault(_field_of(exc), []).append(str(exc).removeprefix("view."))
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    rows = entity.views.newest(view, view.limit + 1, below=int(before))
    more = len(rows) > view.limit
    rows = rows[:view.limit]
    return JsonResponse({
        "tasks": [entity.serializer(task) for task in rows],
        "more": more,
        "before": int(before),
        "view": view.echo,
        "at": timezone.now().isoformat(),
    })


def _task_detail_pattern():
    """The task page's URL with 0 for the id (the client puts each row's id in)."""
    try:
        return reverse("task_detail", args=[0])
    except NoReverseMatch:
        return "/tasks/0/"  # the task page's stable path, before that page is routed


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
    """200 when the database and the channel layer answer, else 503 naming what failed; 503
    `"status": "draining"` once the process got SIGTERM (its sockets are being closed with
    1012: a balancer and the pages' health probe should go elsewhere).

    Anonymous callers (load balancers, the outside world) learn only which part failed, never
    what the parts are; a staff session also gets the channel layer's class and the error
    text. Each failure is logged once, with its traceback, on the "tasks.health" logger."""
    from realtime import lifecycle

    if lifecycle.draining:
        return JsonResponse({"status": "draining", "checks": {}}, status=503)
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

"""The detail pages of a task (`/tasks/<id>/`) and an agent (`/agents/<id>/`), and the JSON their
live parts fetch.

Each page is rendered whole on the server, its timeline newest first from the stored history
(realtime/changes.py). The page then opens the dashboard stream; when the stream says its
task or agent changed, it fetches `<page>/timeline?after=<newest seq shown>` and puts the new
items on top. The stream carries state (the latest row), not history: after a reconnect it
sends one row however many times that row changed, so the items come from the history, which
has every change and who made it. Items and fields are rendered by the same templates as the
page (templates/tasks/), so a live item looks exactly like one after a reload. A task's runs of
progress reports are folded into one line (tasks/timeline.py) that still holds one element
per change; a live fetch that continues the run at the top of the page answers with the line
extended and says whether it `replaces` the page's top item (one change) or `extends` it (a
folded line: only the new changes come, to go on top of the line's own).

An operator (staff with tasks.change_task, as the API asks) gets the task's actions on its
page: cancel and requeue through the operator API, and "mark failed" with a reason through
`task_fail` below, each after a confirmation (static/detail/actions.js).
"""
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Max
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_POST
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import condition

from realtime import changes as history

from . import domain
from .selectors import current_task
from .models import Agent, Task
from .throughput import throughput as throughput_data
from .timeline import live_task_items, online_items, task_items

PAGE = 50  # timeline items per page; "Older" fetches the next
RECENT_TASKS = 20

viewer = [never_cache, login_required, permission_required("tasks.view_task", raise_exception=True)]


def page_view(func):
    for decorator in reversed(viewer):
        func = decorator(func)
    return func


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        raise Http404("not a sequence number") from None


def duration(seconds):
    """ "850 ms", "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    seconds = int(seconds)
    for size, unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if seconds >= size:
            rest = (seconds % size) // small
            return f"{seconds // size} {unit}" + (f" {rest} {small_unit}" if rest else "")
    return f"{seconds} s"


def task_times(task, now):
    """How long it waited (created to started), ran (started to finished) and took in all;
    still counting while it waits or runs."""
    span = lambda start, end: None if start is None else (end or now) - start  # noqa: E731
    waited = span(task.created_at, task.started_at)
    ran = span(task.started_at, task.finished_at)
    took = span(task.created_at, task.finished_at) if task.finished_at else None
    seconds = lambda d: None if d is None else d.total_seconds()  # noqa: E731
    return {
        "waited": duration(seconds(waited)), "waiting": task.started_at is None and task.finished_at is None,
        "ran": duration(seconds(ran)), "running": task.status == Task.Status.RUNNING,
        "took": duration(seconds(took)),
    }


def may_change_tasks(user):
    """Who gets the task actions: active staff with tasks.change_task (the operator API's rule)."""
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm("tasks.change_task"))


def _items_json(items):
    return [{"seq": i.seq, "html": render_to_string("tasks/_change.html", {"item": i})} for i in items]


# Tasks -----------------------------------------------------------------------------------------


def _task_context(pk):
    task = Task.objects.select_related("agent").filter(pk=pk).first()
    return {"task": task, "times": task_times(task, timezone.now()) if task else None}


@page_view
def task_detail(request, pk):
    """A task's fields and its timeline, live; its actions for an operator."""
    context = _task_context(pk)
    items, has_older = task_items(pk, limit=PAGE)
    if context["task"] is None and not items:
        raise Http404(f"No task with id {pk}.")
    context.update(items=items, has_older=has_older, pk=pk, can_change=may_change_tasks(request.user),
                   newest=items[0].seq if items else 0, version=context["task"].version if context["task"] else 0)
    return render(request, "tasks/task_detail.html", context)


@page_view
def task_timeline(request, pk):
    """JSON for the live page: the items after `after` (or older than `before`) and the fields."""
    before = _int(request.GET.get("before"))
    if before is not None:
        items, has_older = task_items(pk, before=before, limit=PAGE)
        return JsonResponse({"items": _items_json(items), "older": has_older})
    after = _int(request.GET.get("after"))
    live = None if after is None else live_task_items(pk, after=after, run=_int(request.GET.get("run")), limit=PAGE)
    if live is None:  # the first fetch, or too much to add: start over from the newest page
        items, has_older = task_items(pk, limit=PAGE)
        answer = {"reset": True, "older": has_older}
    else:
        items, replaces, extends = live
        answer = {"reset": False, "older": False, **({"replaces": replaces} if replaces else {}),
                  **({"extends": extends} if extends else {})}
    context = _task_context(pk)
    task = context["task"]
    return JsonResponse({
        "items": _items_json(items), **answer,
        "version": task.version if task else max([i.seq for i in items], default=0),
        "deleted": task is None,
        "fields_html": render_to_string("tasks/_task_fields.html", context) if task else "",
    })


# What an operator's action answers: the API's codes for the same domain errors (tasks/api/errors.py).
ACTION_ERRORS = ((domain.NotFound, 404), (domain.InvalidChange, 409), (domain.DomainError, 409))


@never_cache
@require_POST
def task_fail(request, pk):
    """POST `reason`: an operator marks a running task failed, with the reason as its error.
    JSON like the operator API's cancel and requeue: the task's id, status and version, or a
    `detail` that says what to do."""
    if not may_change_tasks(request.user):
        return JsonResponse({"detail": "Only staff users with permission to change tasks can mark a task failed; "
                                       "sign in at /accounts/login/ as one."}, status=403)
    try:
        task = domain.fail(task_id=pk, reason=request.POST.get("reason", ""))
    except domain.DomainError as exc:
        code = 400 if exc.field == "reason" else next(c for kind, c in ACTION_ERRORS if isinstance(exc, kind))
        return JsonResponse({"detail": exc.message}, status=code)
    return JsonResponse({"id": task.pk, "status": task.status, "version": task.version, "error": task.error})


# Agents ----------------------------------------------------------------------------------------


def _agent_context(pk):
    agent = Agent.objects.filter(pk=pk).first()
    if agent is None:
        raise Http404(f"No agent with id {pk}.")
    tasks = Task.objects.filter(agent_id=pk)
    return {
        "agent": agent,
        "current": current_task(pk),
        "recent": list(tasks.order_by("-updated_at", "-id")[:RECENT_TASKS]),
        # What the page has seen: the agent's row and its tasks' rows (the stream's numbers).
        "version": max(agent.version, tasks.aggregate(top=Max("version"))["top"] or 0),
    }


def _online_page(pk, after=None, before=None):
    rows = history.of_object("agent", pk, after=after, before=before, limit=PAGE + 1, moved=True)
    reset = after is None or len(rows) > PAGE
    return online_items(rows[:PAGE]), len(rows) > PAGE, reset


@page_view
def agent_detail(request, pk):
    """An agent: its state, current and recent tasks, and when it went on and offline."""
    context = _agent_context(pk)
    items, has_older, _ = _online_page(pk)
    context.update(items=items, has_older=has_older, pk=pk, newest=items[0].seq if items else 0)
    return render(request, "tasks/agent_detail.html", context)


@page_view
def agent_timeline(request, pk):
    before = _int(request.GET.get("before"))
    if before is not None:
        items, has_older, _ = _online_page(pk, before=before)
        return JsonResponse({"items": _items_json(items), "older": has_older})
    try:
        context = _agent_context(pk)
    except Http404:
        return JsonResponse({"items": [], "older": False, "reset": False, "version": 0, "deleted": True})
    items, has_older, reset = _online_page(pk, after=_int(request.GET.get("after")))
    return JsonResponse({
        "items": _items_json(items), "older": has_older, "reset": reset, "version": context["version"],
        "deleted": False, "fields_html": render_to_string("tasks/_agent_fields.html", context),
    })


# The throughput chart -----------------------------------------------------------------------


def _throughput_etag(request):
    """Same newest status change, same kept history, same minute: the same picture. The chart
    refetches every few seconds and mostly gets a 304 for two indexed reads (progress reports
    move no status, so they change nothing here)."""
    newest = history.newest_moved("task")
    return f"{newest}:{history.complete_since()}:{timezone.now().strftime('%Y%m%d%H%M')}"


@login_required
@permission_required("tasks.view_task", raise_exception=True)
@cache_control(private=True, no_cache=True)  # kept by the browser, revalidated every time
@condition(etag_func=_throughput_etag)
def throughput(request):
    """JSON for the dashboard's chart (tasks/throughput.py)."""
    return JsonResponse(throughput_data())

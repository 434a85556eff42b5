"""What the API does to tasks and agents, one transaction per request.

Every function that reads rows and then writes them takes the stream lock first
(`lock_stream()`), right after entering the transaction. All sequenced writers queue on that
one lock, so the rows read afterwards are the latest committed ones and cannot change
before this transaction commits: no lost updates, no two agents with the same task, no
deadlocks. Writes go through `save()`, so each is numbered and published after commit.
"""
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from realtime.sequencing import lock_stream

from ..models import Agent, Task
from . import transitions
from .errors import Conflict

RUNNING = Task.Status.RUNNING


def heard_refresh_seconds():
    """How stale last_heartbeat may get before a report (not a heartbeat) rewrites it."""
    return min(5.0, settings.AGENT_OFFLINE_AFTER / 4)


def running_task_of(agent_id):
    """The task the agent is running now, or None (derived, like Agent.current_task)."""
    return Task.objects.filter(agent_id=agent_id, status=RUNNING).order_by("-started_at", "-id").first()


def get_task(task_id):
    """The task with this id, or a 404."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"No task with id {task_id}.")
    return task


def _get_agent(agent_id):
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:  # deleted while its token was in flight
        raise NotFound(f"No agent with id {agent_id}; it was deleted. Ask an operator for a new token.")
    return agent


def _heard_from(agent, now, busy=None, force=False, hostname=None):
    """Record that the agent was heard from. Writes only when the dashboard would see a
    difference (status, hostname) or the heartbeat is getting stale, to keep reports cheap."""
    if busy is None:
        busy = running_task_of(agent.pk) is not None
    status = Agent.Status.BUSY if busy else Agent.Status.IDLE
    stale = agent.last_heartbeat is None or (now - agent.last_heartbeat).total_seconds() >= heard_refresh_seconds()
    new_host = hostname is not None and hostname != agent.hostname
    if force or stale or new_host or agent.status != status:
        agent.status, agent.last_heartbeat = status, now
        if hostname is not None:
            agent.hostname = hostname
        agent.save(update_fields=["status", "last_heartbeat", "hostname"])
    return agent


def _settle_agent(agent_id):
    """After a task left an agent: an online agent is busy only while it runs something."""
    if agent_id is None:
        return
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None or agent.status == Agent.Status.OFFLINE:
        return
    status = Agent.Status.BUSY if running_task_of(agent_id) else Agent.Status.IDLE
    if agent.status != status:
        agent.status = status
        agent.save(update_fields=["status"])


def heartbeat(agent_id, hostname=None):
    """The agent is alive: refresh last_heartbeat; an offline agent comes back idle or busy."""
    with transaction.atomic():
        lock_stream()
        agent = _get_agent(agent_id)
        return _heard_from(agent, timezone.now(), force=True, hostname=hostname)


def claim(agent_id, task_id=None):
    """Give the agent the oldest queued task (or `task_id`); None when the queue is empty.

    Two agents never get the same task: the stream lock serialises every sequenced writer,
    and on PostgreSQL the queued row is also locked with SKIP LOCKED, so a claim never waits
    on a row some other (unsequenced) transaction holds."""
    with transaction.atomic():
        lock_stream()
        agent = _get_agent(agent_id)
        now = timezone.now()
        current = running_task_of(agent_id)
        if current is not None:
            raise Conflict(
                f"You are already running task {current.pk}; report it succeeded or failed before claiming another.",
                current_task=current.pk,
            )
        if task_id is None:
            task = (
                Task.objects.select_for_update(skip_locked=True)
                .filter(status=Task.Status.QUEUED).order_by("created_at", "id").first()
            )
            if task is None:
                _heard_from(agent, now, busy=False)
                return None
        else:
            task = Task.objects.select_for_update().filter(pk=task_id).first()
            if task is None:
                raise NotFound(f"No task with id {task_id}.")
            if task.status != Task.Status.QUEUED:
                owner = f" by agent {task.agent_id}" if task.agent_id else ""
                raise Conflict(f"Task {task.pk} is {task.status}{owner}, not queued; claim another task.")
        transitions.check(task, RUNNING, transitions.AGENT)
        task.status, task.agent, task.progress, task.error = RUNNING, agent, 0, ""
        task.save(update_fields=["status", "agent", "progress", "error"])
        _heard_from(agent, now, busy=True)
        return task


def report(agent_id, task_id, progress=None, status=None, error=None):
    """An agent reports on its task: progress, and/or that it succeeded or failed."""
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        if task.agent_id != agent_id:
            raise PermissionDenied(
                f"Task {task_id} is not assigned to you (it was requeued, reassigned, or never "
                "yours). Stop working on it and claim another task."
            )
        target = status or RUNNING
        transitions.check(task, target, transitions.AGENT)
        fields = ["status"]
        task.status = target
        if target == Task.Status.SUCCEEDED:
            progress = 100
        if progress is not None:
            task.progress = progress
            fields.append("progress")
        if error is not None:
            task.error = error
            fields.append("error")
        task.save(update_fields=fields)
        _heard_from(_get_agent(agent_id), timezone.now(), busy=target == RUNNING)
        return task


def cancel(task_id):
    """An operator cancels a queued or running task; its agent becomes idle."""
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        transitions.check(task, Task.Status.CANCELLED, transitions.OPERATOR)
        task.status = Task.Status.CANCELLED
        task.save(update_fields=["status"])
        _settle_agent(task.agent_id)
        return task


def requeue(task_id):
    """An operator puts a failed or cancelled task back in the queue, from 0%."""
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        transitions.check(task, Task.Status.QUEUED, transitions.OPERATOR)
        task.status, task.progress, task.agent, task.error = Task.Status.QUEUED, 0, None, ""
        task.save(update_fields=["status", "progress", "agent", "error"])
        return task


def edit(task_id, **values):
    """An operator changes a task's title or description (not its status)."""
    if not values:
        raise ValidationError({"non_field_errors": ["Send at least one of: title, description."]})
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        for name, value in values.items():
            setattr(task, name, value)
        task.save(update_fields=list(values))
        return task


def create(title, description=""):
    """An operator adds a queued task."""
    task = Task(title=title, description=description)
    task.save()
    return task

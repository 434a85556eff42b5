"""The rules of tasks and agents, and every state change that follows them.

Every interface goes through this module: the agent and operator API (tasks/api/views.py),
the admin's change form and actions (tasks/admin.py), the liveness sweep (tasks/liveness.py),
deleting an agent (tasks/signals.py), and the management commands. It is plain Python: it
raises the domain errors below, and each interface translates them (DRF to HTTP in
tasks/api/errors.py, the admin to form errors and messages, commands to CommandError).
tests/test_domain.py holds each rule, and checks that the interfaces reach it.

The rules:
- A status change must be in TRANSITIONS for the actor making it (agent, operator, system).
- A running task has an agent; an agent runs at most one task at a time; a queued task has
  no agent. An online agent is busy exactly while it runs a task.
- An agent that goes offline (the sweep, an operator, its deletion) leaves its running task
  to AGENT_OFFLINE_TASK_POLICY: back to the queue, or failed with a reason.
- `current_task()` is the one answer to "what is this agent running".

Every function that reads rows and then writes them takes the stream lock first
(`lock_stream()`), right after entering its transaction. All sequenced writers queue on that
one lock, so the rows read afterwards are the latest committed ones and cannot change before
this transaction commits: no lost updates, no two agents with the same task, no deadlocks.
Writes go through the sequenced models, so each is numbered and published after commit.
"""
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from realtime import actor as actors
from realtime.sequencing import lock_stream

from .models import Agent, Task

QUEUED, RUNNING = Task.Status.QUEUED, Task.Status.RUNNING
SUCCEEDED, FAILED, CANCELLED = Task.Status.SUCCEEDED, Task.Status.FAILED, Task.Status.CANCELLED
AGENT, OPERATOR, SYSTEM = "agent", "operator", "system"

# Which status changes make sense, and who may make them. Anything else is refused.
TRANSITIONS = {
    (QUEUED, RUNNING): {AGENT, OPERATOR},  # a claim (an operator may assign one in the admin)
    (RUNNING, RUNNING): {AGENT},  # a progress report
    (RUNNING, SUCCEEDED): {AGENT, OPERATOR},  # an operator may close a task by hand
    (RUNNING, FAILED): {AGENT, OPERATOR, SYSTEM},  # SYSTEM: its agent went offline, policy "fail"
    (RUNNING, QUEUED): {SYSTEM},  # its agent went offline, policy "requeue"
    (QUEUED, CANCELLED): {OPERATOR},
    (RUNNING, CANCELLED): {OPERATOR},
    (FAILED, QUEUED): {OPERATOR},  # requeue
    (CANCELLED, QUEUED): {OPERATOR},
}

HINTS = {
    AGENT: "An agent can only report on a running task it claimed: progress, succeeded or failed.",
    OPERATOR: "Operators can cancel queued or running tasks, requeue failed or cancelled ones, "
              "assign a queued task to an agent, or close a running one.",
    SYSTEM: "",
}

# "What is this agent running": the running task that started last (newest id on a tie).
# The rules keep it to one task; the order makes the answer the same everywhere anyway.
CURRENT_ORDER = ("-started_at", "-id")


# Errors ---------------------------------------------------------------------------------------


class DomainError(Exception):
    """A request the rules refuse. `field` names the field at fault, when there is one."""

    def __init__(self, message, field=None, **extra):
        super().__init__(message)
        self.message, self.field, self.extra = message, field, extra


class NotFound(DomainError):
    """No such task or agent."""


class NotYours(DomainError):
    """The agent acts on a task that is not (or no longer) assigned to it."""


class Conflict(DomainError):
    """Valid, but the current state forbids it (a lost claim, a task already running)."""


class InvalidChange(DomainError):
    """A status change or a combination of values the rules do not allow."""


class StaleEdit(DomainError):
    """The row changed since the editor loaded it."""


# Reading --------------------------------------------------------------------------------------


def current_task(agent_id):
    """The task the agent is running now, or None."""
    return Task.objects.filter(agent_id=agent_id, status=RUNNING).order_by(*CURRENT_ORDER).first()


def current_tasks(agent_ids=None):
    """{agent id: its current task} for many agents in one query."""
    running = Task.objects.filter(status=RUNNING, agent__isnull=False)
    if agent_ids is not None:
        running = running.filter(agent_id__in=list(agent_ids))
    chosen = {}
    for task in running.order_by(*CURRENT_ORDER):
        chosen.setdefault(task.agent_id, task)
    return chosen


def with_current_task(agents):
    """Annotate an agent queryset with `running_task_id`, in the same query."""
    running = Task.objects.filter(agent=OuterRef("pk"), status=RUNNING).order_by(*CURRENT_ORDER)
    return agents.annotate(running_task_id=Subquery(running.values("pk")[:1]))


def get_task(task_id, with_agent=False):
    tasks = Task.objects.select_related("agent") if with_agent else Task.objects
    try:
        return tasks.get(pk=task_id)  # get(): no ORDER BY to build for a primary key
    except (Task.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No task with id {task_id}.") from None


def get_agent(agent_id):
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:  # deleted while its token was in flight
        raise NotFound(f"No agent with id {agent_id}; it was deleted. Ask an operator for a new token.")
    return agent


def allowed(current, target, actor):
    """True when `actor` may move a task from `current` to `target`."""
    return actor in TRANSITIONS.get((current, target), ())


def check_transition(task, target, actor):
    if allowed(task.status, target, actor):
        return
    if task.status == target:
        message = f"Task {task.pk} is already {task.status}."
    else:
        message = f"Task {task.pk} is {task.status}; it cannot become {target}."
    raise InvalidChange(f"{message} {HINTS[actor]}".strip(), field="status")


# Agents ---------------------------------------------------------------------------------------


def heard_refresh_seconds():
    """How stale last_heartbeat may get before a report (not a heartbeat) rewrites it."""
    return min(5.0, settings.AGENT_OFFLINE_AFTER / 4)


def _heard_from(agent, now, busy=None, force=False, hostname=None):
    """Record that the agent was heard from. Writes only when the dashboard would see a
    difference (status, hostname) or the heartbeat is getting stale, to keep reports cheap."""
    if busy is None:
        busy = current_task(agent.pk) is not None
    status = Agent.Status.BUSY if busy else Agent.Status.IDLE
    stale = agent.last_heartbeat is None or (now - agent.last_heartbeat).total_seconds() >= heard_refresh_seconds()
    new_host = hostname is not None and hostname != agent.hostname
    if force or stale or new_host or agent.status != status:
        agent.status, agent.last_heartbeat = status, now
        if hostname is not None:
            agent.hostname = hostname
        agent.save(update_fields=["status", "last_heartbeat", "hostname"])
    return agent


def settle_agent(agent_id):
    """After a task left or joined an agent: an online agent is busy exactly while it runs one."""
    if agent_id is None:
        return
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None or agent.status == Agent.Status.OFFLINE:
        return
    status = Agent.Status.BUSY if current_task(agent_id) else Agent.Status.IDLE
    if agent.status != status:
        agent.status = status
        agent.save(update_fields=["status"])


def heartbeat(*, agent_id, hostname=None):
    """The agent is alive: refresh last_heartbeat; an offline agent comes back idle or busy."""
    with transaction.atomic():
        lock_stream()
        return _heard_from(get_agent(agent_id), timezone.now(), force=True, hostname=hostname)


def take_agents_offline(*, agents, reason):
    """Mark `agents` ({id: name}) offline; their running tasks follow AGENT_OFFLINE_TASK_POLICY.

    Returns {"offline": [agent ids], "requeued": [task ids], "failed": [task ids]}."""
    with transaction.atomic():
        lock_stream()
        result = {"offline": [], "requeued": [], "failed": []}
        going = Agent.objects.filter(pk__in=list(agents)).exclude(status=Agent.Status.OFFLINE)
        result["offline"] = sorted(going.values_list("pk", flat=True))
        for agent_id, name in agents.items():
            outcome = _release_running_tasks(agent_id, name, reason)
            result["requeued"] += outcome["requeued"]
            result["failed"] += outcome["failed"]
        if result["offline"]:
            Agent.objects.filter(pk__in=result["offline"]).update(status=Agent.Status.OFFLINE)
        return result


def _release_running_tasks(agent_id, name, reason):
    """The SYSTEM transitions for a departing agent's running tasks (the offline policy)."""
    ids = list(Task.objects.filter(status=RUNNING, agent_id=agent_id).values_list("pk", flat=True))
    outcome = {"requeued": [], "failed": []}
    if not ids:
        return outcome
    if settings.AGENT_OFFLINE_TASK_POLICY == "fail":
        Task.objects.filter(pk__in=ids).update(status=FAILED, error=f"Agent {name} went offline ({reason}).")
        outcome["failed"] = ids
    else:
        Task.objects.filter(pk__in=ids).update(status=QUEUED, agent=None, progress=0, error="")
        outcome["requeued"] = ids
    return outcome


def before_agent_deleted(agent):
    """An agent is being deleted (admin, ORM, cascade): its running task follows the offline
    policy, like an agent that went silent, and its other tasks forget it. Runs inside the
    deletion's transaction (the pre_delete signal); the stream lock is already held."""
    _release_running_tasks(agent.pk, agent.name, "the agent was deleted")
    # Finished tasks keep their history but not a reference to a row that is going away. The
    # ORM's own SET_NULL would update them without numbering the change.
    Task.objects.filter(agent_id=agent.pk).update(agent=None)


# Tasks: agents --------------------------------------------------------------------------------


def claim(*, agent_id, task_id=None):
    """Give the agent the oldest queued task (or `task_id`); None when the queue is empty.

    Two agents never get the same task: the stream lock serialises every sequenced writer,
    and on PostgreSQL the queued row is also locked with SKIP LOCKED, so a claim never waits
    on a row some other (unsequenced) transaction holds."""
    with transaction.atomic():
        lock_stream()
        agent = get_agent(agent_id)
        now = timezone.now()
        running = current_task(agent_id)
        if running is not None:
            raise Conflict(
                f"You are already running task {running.pk}; report it succeeded or failed before claiming another.",
                current_task=running.pk,
            )
        if task_id is None:
            task = Task.objects.select_for_update(skip_locked=True).filter(status=QUEUED).order_by("created_at", "id").first()
            if task is None:
                _heard_from(agent, now, busy=False)
                return None
        else:
            task = Task.objects.select_for_update().filter(pk=task_id).first()
            if task is None:
                raise NotFound(f"No task with id {task_id}.")
            if task.status != QUEUED:
                owner = f" by agent {task.agent_id}" if task.agent_id else ""
                raise Conflict(f"Task {task.pk} is {task.status}{owner}, not queued; claim another task.")
        check_transition(task, RUNNING, AGENT)
        task.status, task.agent, task.progress, task.error = RUNNING, agent, 0, ""
        task.save(update_fields=["status", "agent", "progress", "error"])
        _heard_from(agent, now, busy=True)
        return task


def _check_report(task, agent_id, target):
    if task.agent_id != agent_id:
        raise NotYours(
            f"Task {task.pk} is not assigned to you (it was requeued, reassigned, or never "
            "yours). Stop working on it and claim another task."
        )
    check_transition(task, target, AGENT)


def report(*, agent_id, task_id, progress=None, status=None, error=None, batch=True):
    """An agent reports on its task: progress, and/or that it succeeded or failed.

    Plain progress reports from several request threads are written together
    (tasks/report_batch.py, report_progress below); the rules are the same."""
    if (batch and status is None and error is None and progress is not None
            and not transaction.get_connection().in_atomic_block):
        from . import report_batch

        return report_batch.submit(agent_id, task_id, progress)
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id, with_agent=True)  # the agent too: its heartbeat is checked below
        target = status or RUNNING
        _check_report(task, agent_id, target)
        fields = ["status"]
        task.status = target
        if target == SUCCEEDED:
            progress = 100
        if progress is not None:
            task.progress = progress
            fields.append("progress")
        if error is not None:
            task.error = error
            fields.append("error")
        task.save(update_fields=fields)
        # The agent, read under the lock, also serves the answer's `agent` (no second query).
        task.agent = _heard_from(task.agent, timezone.now(), busy=target == RUNNING)
        return task


@dataclass
class ProgressReport:
    agent_id: int
    task_id: int
    progress: int
    actor: object = None  # who reported it (realtime/actor.py), for the task's history


def report_progress(reports):
    """Several agents' progress reports in one transaction: for each, in order, the task as
    written or the DomainError that refused it (the others are written all the same). Two
    reports on one task: the later one's progress stands, both answer with it."""
    outcomes = [None] * len(reports)
    with transaction.atomic():
        lock_stream()
        tasks = Task.objects.select_related("agent").in_bulk({r.task_id for r in reports})
        last = {}  # task id -> the report whose progress is written
        for index, r in enumerate(reports):
            try:
                task = tasks.get(r.task_id)
                if task is None:
                    raise NotFound(f"No task with id {r.task_id}.")
                _check_report(task, r.agent_id, RUNNING)
            except DomainError as refused:
                outcomes[index] = refused
                continue
            task.status, task.progress = RUNNING, r.progress
            last[r.task_id] = r
        if not last:
            return outcomes
        # Each task is saved as a lone report saves it (one number each); what the batch
        # shares is the transaction: its lock, its read and its commit.
        now = timezone.now()
        for pk, r in last.items():
            task = tasks[pk]
            token = actors.set_current(r.actor)
            try:
                task.save(update_fields=["status", "progress"])
                _heard_from(task.agent, now, busy=True)
            finally:
                actors.reset(token)
    return [tasks[r.task_id] if outcome is None else outcome for r, outcome in zip(reports, outcomes)]


# Tasks: operators -----------------------------------------------------------------------------


def create(*, title, description=""):
    """An operator adds a queued task."""
    task = Task(title=title, description=description)
    task.save()
    return task


def edit(*, task_id, **values):
    """An operator changes a task's title or description (not its status)."""
    if not values:
        raise InvalidChange("Send at least one of: title, description.")
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        for name, value in values.items():
            setattr(task, name, value)
        task.save(update_fields=list(values))
        return task


def _cancel(task):
    check_transition(task, CANCELLED, OPERATOR)
    agent_id = task.agent_id
    task.status = CANCELLED
    task.save(update_fields=["status"])
    settle_agent(agent_id)
    return task


def _requeue(task):
    check_transition(task, QUEUED, OPERATOR)
    task.status, task.progress, task.agent, task.error = QUEUED, 0, None, ""
    task.save(update_fields=["status", "progress", "agent", "error"])
    return task


def cancel(*, task_id):
    """An operator cancels a queued or running task; its agent becomes idle."""
    with transaction.atomic():
        lock_stream()
        return _cancel(get_task(task_id))


def requeue(*, task_id):
    """An operator puts a failed or cancelled task back in the queue, from 0%."""
    with transaction.atomic():
        lock_stream()
        return _requeue(get_task(task_id))


@dataclass
class Outcome:
    """What a bulk operator action did: the tasks changed and the ones left as they were."""

    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def _for_each(task_ids, change):
    with transaction.atomic():
        lock_stream()  # re-read the rows under the lock
        outcome = Outcome()
        for task in Task.objects.filter(pk__in=list(task_ids)).order_by("pk"):
            try:
                change(task)
                outcome.done.append(task.pk)
            except InvalidChange:
                outcome.skipped.append(task.pk)
        return outcome


def cancel_many(*, task_ids):
    """Cancel every queued or running task among `task_ids`; the others are skipped."""
    return _for_each(task_ids, _cancel)


def requeue_many(*, task_ids):
    """Requeue every failed or cancelled task among `task_ids`; the others are skipped."""
    return _for_each(task_ids, _requeue)


# Tasks: the admin's change form ---------------------------------------------------------------


def check_edit(task, *, expected_version, values):
    """Check an operator's edit of `task` (its current row) against the rules, before saving.

    `values` are the form's cleaned fields; `expected_version` the version the form was
    loaded at. Call with the stream lock held (the admin's change view holds it from
    validation to save), so nothing can change in between."""
    if expected_version is not None and task.version != expected_version:
        who = f" by agent {task.agent}" if task.agent_id else ""
        raise StaleEdit(
            f"This task changed while you were editing (it is now {task.status}{who}, version "
            f"{task.version}; you loaded version {expected_version}). Reload the page to see the "
            "change, then make your edit again."
        )
    status, agent = values.get("status", task.status), values.get("agent", task.agent)
    if status != task.status:
        check_transition(task, status, OPERATOR)
    if status == RUNNING:
        if agent is None:
            raise InvalidChange("A running task needs an agent: choose the agent that runs it.", field="agent")
        if agent.status == Agent.Status.OFFLINE:
            raise InvalidChange(f"Agent {agent} is offline; a running task needs an online agent.", field="agent")
        other = Task.objects.filter(agent=agent, status=RUNNING).exclude(pk=task.pk).order_by(*CURRENT_ORDER).first()
        if other is not None:
            raise InvalidChange(f"Agent {agent} is already running task {other.pk} ({other}); an agent runs one task at a time.", field="agent")
    elif status == QUEUED and agent is not None:
        raise InvalidChange("A queued task has no agent yet; clear the agent or mark it running.", field="agent")


def save_edit(task, *, previous_agent_id):
    """Save an operator's checked edit; the agents it touches settle to busy or idle."""
    task.save()
    for agent_id in {previous_agent_id, task.agent_id}:
        settle_agent(agent_id)
    return task


def after_task_deleted(task):
    """A task was deleted: its agent, if it was running it, is idle again."""
    if task.status == RUNNING:
        settle_agent(task.agent_id)

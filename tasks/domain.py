"""The rules of tasks and agents, and every state change that follows them.

Every interface goes through this module: the agent and operator API (tasks/api/views.py),
the admin's task and agent forms and actions (tasks/admin.py), the task page's "mark failed"
(tasks/pages.py), the liveness sweep (tasks/liveness.py), deleting an agent
(tasks/signals.py), the model's clean() (tasks/models.py), and the management commands. It is plain Python: it
raises the domain errors below, and each interface translates them (DRF to HTTP in
tasks/api/errors.py, the admin to form errors and messages, commands to CommandError).
tests/test_domain.py holds each rule, and checks that the interfaces reach it.

The rules:
- A status change must be in TRANSITIONS for the actor making it (agent, operator, system).
- A running task has an agent; an agent runs at most one task at a time; a queued task has
  no agent. An online agent is busy exactly while it runs a task.
- An agent that goes offline (the sweep, an operator's action or form, its deletion) leaves
  its running task to AGENT_OFFLINE_TASK_POLICY: back to the queue, or failed with a reason.
- A task that succeeds is 100% done; one queued again starts from 0% with no agent.
- An operator's edit is refused only where it conflicts with a change made since the form
  was loaded (merge_edit); the fields the operator left alone keep their current values.
- `selectors.current_task()` is the one answer to "what is this agent running".

Every function that reads rows and then writes them takes the stream lock first
(`lock_stream()`), right after entering its transaction. All sequenced writers queue on that
one lock, so the rows read afterwards are the latest committed ones and cannot change before
this transaction commits: no lost updates, no two agents with the same task, no deadlocks.
Writes go through the sequenced models, so each is numbered and published after commit.
"""
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from realtime import actor as actors
from realtime.sequencing import lock_stream

from . import lifecycle
from .lifecycle import check_row
from .errors import Conflict, DomainError, InvalidChange, NotFound, NotYours, StaleEdit  # noqa: F401 (the domain's errors)
from .models import TEXT_LIMIT, Agent, Task
from .selectors import CURRENT_ORDER, current_task, get_agent, get_task

# The statuses and which changes each actor may make are declared in tasks/lifecycle.py.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (lifecycle.QUEUED, lifecycle.RUNNING, lifecycle.SUCCEEDED,
                                                 lifecycle.FAILED, lifecycle.CANCELLED)
AGENT, OPERATOR, SYSTEM = lifecycle.AGENT, lifecycle.OPERATOR, lifecycle.SYSTEM
TRANSITIONS, HINTS = lifecycle.TRANSITIONS, lifecycle.HINTS

allowed = lifecycle.allowed


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


def report(*, agent_id, task_id, progress=None, status=None, error=None):
    """An agent reports on its task: progress, and/or that it succeeded or failed. (Plain
    progress reports that arrive together are written together: tasks/report_batch.py and
    report_progress below; the rules are the same.)"""
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


# Tasks and agents: operators' edits (the admin's forms) -----------------------------------------
#
# An operator's form is open for a while; agents report, claim and heartbeat meanwhile, and each
# of their writes bumps the row's version. An edit is refused only when it conflicts: a field the
# operator changed was also changed meanwhile, to something else. Every other field keeps the
# value it has now, so a progress report that lands while the form is open is neither undone
# nor a reason to refuse a status change or a title fix.

TASK_EDIT_FIELDS = ("title", "description", "status", "progress", "agent", "error")
AGENT_EDIT_FIELDS = ("name", "status", "hostname")


def _plain(value):
    """A value as an edit compares it: a row by its id; text without CR and edge spaces (a
    browser posts CRLF and Django's form fields strip)."""
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, str):
        return value.replace("\r\n", "\n").strip()
    return value


def _shown(name, value):
    if isinstance(value, Model):
        return str(value)
    if value is None:
        return "none"
    return f"{value}%" if name == "progress" else str(value)


def _conflict(name, now, then):
    """ "its progress is now 68% (you loaded 62%)"; long text is not quoted back."""
    if name in ("description", "error"):
        return f"its {name} was changed"
    return f"its {name} is now {_shown(name, now)} (you loaded {_shown(name, then)})"


def check_assignment(*, task_id, status, agent):
    """A running task's agent is online and runs no other task. Read under the stream lock."""
    if status != RUNNING or agent is None:
        return
    agent = Agent.objects.filter(pk=agent.pk).first() or agent  # as it is now, not as the form read it
    if agent.status == Agent.Status.OFFLINE:
        raise InvalidChange(f"Agent {agent} is offline; a running task needs an online agent.", field="agent")
    other = Task.objects.filter(agent=agent, status=RUNNING).exclude(pk=task_id).order_by(*CURRENT_ORDER).first()
    if other is not None:
        raise InvalidChange(
            f"Agent {agent} is already running task {other.pk} ({other}); an agent runs one task at a time.",
            field="agent",
        )


def merge_edit(current, *, values, loaded=None, changed=None, expected_version=None):
    """The fields an operator's edit changes, as {name: value}, checked against `current`
    (the row as it is now, read under the stream lock).

    `values` are the form's values; `loaded` the values the form was loaded with and `changed`
    the names the operator changed (Django's form.changed_data, against the loaded values).
    A changed field that was also changed meanwhile, to something else, is a conflict:
    StaleEdit, naming it. Without `loaded` (a form that did not send what it loaded), any
    change since `expected_version` is one."""
    if loaded is None or changed is None:
        if expected_version is not None and current.version != expected_version:
            raise StaleEdit(
                f"This {_noun(current)} changed while you were editing ({_state(current)}, version "
                f"{current.version}; you loaded version {expected_version}). Reload the page to see the "
                "change, then make your edit again."
            )
        changed = values
    if expected_version is not None and current.version == expected_version:
        loaded = None  # nothing changed since it was loaded: nothing can conflict
    conflicts = []
    for name in changed:
        now = _plain(getattr(current, name))
        if loaded is not None and now != _plain(loaded.get(name)) and now != _plain(values[name]):
            conflicts.append(name)
    if conflicts:
        said = "; ".join(_conflict(name, getattr(current, name), loaded.get(name)) for name in conflicts)
        raise StaleEdit(
            f"This {_noun(current)} changed while you were editing: {said}. Reload the page to see the "
            "change, then make your edit again.",
            field=conflicts[0], conflicts=conflicts,
        )
    return {name: values[name] for name in changed if _plain(values[name]) != _plain(getattr(current, name))}


def _noun(row):
    return "agent" if isinstance(row, Agent) else "task"


def _state(row):
    if isinstance(row, Agent):
        return f"it is now {row.status}"
    return f"it is now {row.status}" + (f" by agent {row.agent}" if row.agent_id else "")


def _follows(status, edit, before):
    """The values a task's new `status` brings with it, unless the operator set them."""
    if status == SUCCEEDED:
        return {"progress": 100}
    if status == QUEUED:
        return {"agent": None, "progress": 0, "error": ""}
    if status == RUNNING and before in (None, QUEUED):
        return {"progress": 0, "error": ""}
    return {}


def _complete(edit, *, before, changed, current=None):
    """`edit` plus what its status brings; refuses an operator's value that contradicts it."""
    status = edit.get("status")
    if status is None or status == before:
        return edit
    for name, value in _follows(status, edit, before).items():
        if name not in changed:
            edit[name] = value
        elif name == "progress" and status == SUCCEEDED and edit.get(name, getattr(current, name, None)) != 100:
            was = f" (it was {current.progress}%)" if current is not None else ""
            raise InvalidChange(
                "A succeeded task is 100% done: set progress to 100, or leave it as it was"
                f"{was} and it is set to 100 for you.", field="progress",
            )
    return edit


def prepare_task_edit(current, *, values, loaded=None, changed=None, expected_version=None):
    """An operator's edit of a task, checked against the rules: returns {name: value} to write
    (their changes, and what a new status brings: 100% when it succeeds, no agent and 0% when
    it is queued again). Call with the stream lock held (the admin's change view holds it from
    validation to save); `current` is the row read under it. See merge_edit()."""
    edit = merge_edit(current, values=values, loaded=loaded, changed=changed, expected_version=expected_version)
    if "status" in edit:
        check_transition(current, edit["status"], OPERATOR)
    edit = _complete(edit, before=current.status, changed=set(edit), current=current)
    edit = {name: value for name, value in edit.items() if _plain(value) != _plain(getattr(current, name))}
    after = {name: edit.get(name, getattr(current, name)) for name in TASK_EDIT_FIELDS}
    check_row(status=after["status"], progress=after["progress"], agent_id=_plain(after["agent"]))
    check_assignment(task_id=current.pk, status=after["status"], agent=after["agent"])
    return edit


def save_task_edit(*, task, edit):
    """Save an operator's checked edit (prepare_task_edit()) of `task`, the row read under the
    lock; the agents it touches settle to busy or idle."""
    if not edit:
        return task
    previous_agent_id = task.agent_id
    for name, value in edit.items():
        setattr(task, name, value)
    task.save(update_fields=list(edit))
    for agent_id in {previous_agent_id, task.agent_id}:
        settle_agent(agent_id)
    return task


def prepare_new_task(*, values, changed):
    """An operator's new task (the admin's add form): returns the values to create it with,
    with what its status brings, checked like an edit. Call with the stream lock held."""
    new = dict(values)
    new = _complete(new, before=None, changed=set(changed) - {"status"})
    check_row(status=new.get("status", QUEUED), progress=new.get("progress", 0), agent_id=_plain(new.get("agent")))
    check_assignment(task_id=None, status=new.get("status", QUEUED), agent=new.get("agent"))
    return new


def save_new_task(*, task):
    """Save a checked new task (prepare_new_task()); an agent given a running task is busy."""
    task.save()
    settle_agent(task.agent_id)
    return task


def fail(*, task_id, reason):
    """An operator closes a running task as failed, with the reason as its error; its agent
    becomes idle (and gets a 409 on its next report)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidChange("Say why the task failed: the reason is kept as its error.", field="reason")
    if len(reason) > TEXT_LIMIT:
        raise InvalidChange(f"The reason is {len(reason):,} characters; at most {TEXT_LIMIT:,}.", field="reason")
    with transaction.atomic():
        lock_stream()
        task = get_task(task_id)
        check_transition(task, FAILED, OPERATOR)
        agent_id = task.agent_id
        task.status, task.error = FAILED, reason
        task.save(update_fields=["status", "error"])
        settle_agent(agent_id)
        return task


def prepare_agent_edit(current, *, values, loaded=None, changed=None, expected_version=None):
    """An operator's edit of an agent (name, host, status), checked: returns {name: value} to
    write. Busy and idle follow from whether it runs a task, so an operator chooses only
    between online and offline; offline sends its running task to AGENT_OFFLINE_TASK_POLICY
    (save_agent_edit()). Call with the stream lock held; `current` is read under it."""
    edit = merge_edit(current, values=values, loaded=loaded, changed=changed, expected_version=expected_version)
    status = edit.get("status")
    if status in (Agent.Status.IDLE, Agent.Status.BUSY):
        running = current_task(current.pk) if current.status != Agent.Status.OFFLINE else None
        should = Agent.Status.BUSY if running is not None else Agent.Status.IDLE
        if status != should:
            why = f"runs task {running.pk} ({running})" if running is not None else "runs no task"
            raise InvalidChange(
                f"Busy and idle follow from an agent's work: {current} {why}, so it is {should}. "
                "To stop it, mark it offline (its running task then follows the offline policy) or "
                "cancel its task.", field="status",
            )
    return edit


def save_agent_edit(*, agent, edit, reason):
    """Save an operator's checked agent edit; taken offline, its running task follows
    AGENT_OFFLINE_TASK_POLICY with `reason`, as the sweep's do."""
    if not edit:
        return agent
    if edit.get("status") == Agent.Status.OFFLINE and agent.status != Agent.Status.OFFLINE:
        _release_running_tasks(agent.pk, edit.get("name", agent.name), reason)
    for name, value in edit.items():
        setattr(agent, name, value)
    agent.save(update_fields=list(edit))
    return agent


def prepare_new_agent(*, values):
    """A new agent runs nothing: it starts idle or offline."""
    if values.get("status") == Agent.Status.BUSY:
        raise InvalidChange("A new agent runs no task, so it is idle (or offline); busy follows from running one.",
                            field="status")
    return values


def after_task_deleted(task):
    """A task was deleted: its agent, if it was running it, is idle again."""
    if task.status == RUNNING:
        settle_agent(task.agent_id)

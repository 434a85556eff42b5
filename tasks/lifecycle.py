"""A task's life, declared once: its statuses, who may move a task from one to another, what
each status means for the task's agent, progress and timestamps, and the words people read.

Everything else derives from this module: the model's choices and check constraints
(tasks/models.py), the domain's checks (tasks/domain.py), the API's choices
(tasks/api/serializers.py), the admin's badges, the counts per status, and the pages, which
receive `as_json()` and build their chips, labels and actions from it. ARCHITECTURE.md,
"Add a task status", says what else a new status needs (a migration, maybe a colour).
"""
from dataclasses import dataclass

from .errors import InvalidChange

AGENT, OPERATOR, SYSTEM = "agent", "operator", "system"


@dataclass(frozen=True)
class Status:
    value: str
    label: str
    hint: str  # what it means, for people
    finished: bool = False  # the task's work is over (it has a finished_at; retention may delete it)
    started: bool = False  # it has a started_at (it runs)
    agent: str = "any"  # "required", "none" or "any": whether a task in it has an agent


STATUSES = (
    Status("queued", "Queued", "Waiting for an agent to claim it.", agent="none"),
    Status("running", "Running", "An agent works on it and reports its progress.", started=True, agent="required"),
    Status("succeeded", "Succeeded", "Its agent finished it.", finished=True),
    Status("failed", "Failed", "Its agent, an operator or the offline policy gave up on it, with a reason.",
           finished=True),
    Status("cancelled", "Cancelled", "An operator stopped it.", finished=True),
)
BY_VALUE = {s.value: s for s in STATUSES}
VALUES = tuple(BY_VALUE)
CHOICES = [(s.value, s.label) for s in STATUSES]
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = VALUES
FINISHED = tuple(s.value for s in STATUSES if s.finished)
STARTED = tuple(s.value for s in STATUSES if s.started)


@dataclass(frozen=True)
class Move:
    """A status change, and who may make it."""

    source: str
    target: str
    actors: frozenset
    why: str


MOVES = (
    Move(QUEUED, RUNNING, frozenset({AGENT, OPERATOR}), "a claim (an operator may assign one in the admin)"),
    Move(RUNNING, RUNNING, frozenset({AGENT}), "a progress report"),
    Move(RUNNING, SUCCEEDED, frozenset({AGENT, OPERATOR}), "done (an operator may close a task by hand)"),
    Move(RUNNING, FAILED, frozenset({AGENT, OPERATOR, SYSTEM}), "failed (SYSTEM: its agent went offline, policy fail)"),
    Move(RUNNING, QUEUED, frozenset({SYSTEM}), "its agent went offline, policy requeue"),
    Move(QUEUED, CANCELLED, frozenset({OPERATOR}), "cancelled before it ran"),
    Move(RUNNING, CANCELLED, frozenset({OPERATOR}), "cancelled while it ran"),
    Move(FAILED, QUEUED, frozenset({OPERATOR}), "requeued"),
    Move(CANCELLED, QUEUED, frozenset({OPERATOR}), "requeued"),
)
TRANSITIONS = {(m.source, m.target): m.actors for m in MOVES}

HINTS = {
    AGENT: "An agent can only report on a running task it claimed: progress, succeeded or failed.",
    OPERATOR: "Operators can cancel queued or running tasks, requeue failed or cancelled ones, "
              "assign a queued task to an agent, or close a running one.",
    SYSTEM: "",
}

# What an operator does from the pages (the dashboard's rows and selection, the task page), as
# status changes: the statuses each action applies to are the moves an operator may make.
ACTIONS = {
    "cancel": {"to": CANCELLED, "label": "Cancel", "doing": "Cancelling…", "done": "Cancelled", "verb": "cancel",
               "verbed": "cancelled"},
    "requeue": {"to": QUEUED, "label": "Requeue", "doing": "Requeueing…", "done": "Requeued", "verb": "requeue",
                "verbed": "requeued"},
    "fail": {"to": FAILED, "label": "Mark failed", "doing": "Marking failed…", "done": "Marked failed",
             "verb": "mark failed", "verbed": "marked failed"},
}


def allowed(current, target, actor):
    """True when `actor` may move a task from `current` to `target`."""
    return actor in TRANSITIONS.get((current, target), ())


def sources(target, actor):
    """The statuses `actor` may move a task from to `target` (not counting staying put)."""
    return [s for s in VALUES if s != target and allowed(s, target, actor)]


def reachable(source, actor):
    """The statuses `actor` may move a task in `source` to (staying put included)."""
    return [t for t in VALUES if allowed(source, t, actor)]


def timestamps(status, started_at, finished_at, now):
    """(started_at, finished_at) as a task in `status` holds them: set on entering, kept
    while they still apply, cleared when they no longer do."""
    spec = BY_VALUE.get(status)
    if spec is None:
        return started_at, finished_at
    started = (started_at or now) if spec.started else started_at if spec.finished else None
    finished = (finished_at or now) if spec.finished else None
    return started, finished


def as_json():
    """What the pages need: the statuses in order, and the operator actions with the statuses
    each applies to."""
    return {
        "statuses": [{"value": s.value, "label": s.label, "hint": s.hint, "finished": s.finished} for s in STATUSES],
        "actions": {name: {**words, "from": sources(words["to"], OPERATOR)} for name, words in ACTIONS.items()},
    }


def check_row(*, status, progress, agent_id):
    """The rules one task row keeps by itself, whoever writes it (the domain's edits and new
    tasks, and Task.clean())."""
    spec = BY_VALUE.get(status)
    if status == SUCCEEDED and progress != 100:
        raise InvalidChange("A succeeded task is 100% done.", field="progress")
    if spec is not None and spec.agent == "none" and agent_id is not None:
        raise InvalidChange(f"A {status} task has no agent yet; clear the agent or mark it running.", field="agent")
    if spec is not None and spec.agent == "required" and agent_id is None:
        raise InvalidChange(f"A {status} task needs an agent: choose the agent that runs it.", field="agent")

"""The task state machine: which status changes make sense, and who may make them.

This table is the one place that decides; the API, the liveness sweep and the tests all read
it. A change not listed here is refused with a 400 naming the field `status`.
"""
from rest_framework.exceptions import ValidationError

AGENT, OPERATOR, SYSTEM = "agent", "operator", "system"

ALLOWED = {
    ("queued", "running"): {AGENT},  # a claim
    ("running", "running"): {AGENT},  # a progress report
    ("running", "succeeded"): {AGENT},
    ("running", "failed"): {AGENT, SYSTEM},  # SYSTEM: its agent went offline, policy "fail"
    ("running", "queued"): {SYSTEM},  # its agent went offline, policy "requeue"
    ("queued", "cancelled"): {OPERATOR},
    ("running", "cancelled"): {OPERATOR},
    ("failed", "queued"): {OPERATOR},  # requeue
    ("cancelled", "queued"): {OPERATOR},
}

HINTS = {
    AGENT: "An agent can only report on a running task it claimed: progress, succeeded or failed.",
    OPERATOR: "Operators can cancel queued or running tasks and requeue failed or cancelled ones.",
    SYSTEM: "",
}


def allowed(current, target, actor):
    """True when `actor` may move a task from `current` to `target`."""
    return actor in ALLOWED.get((current, target), ())


def check(task, target, actor):
    """Raise a 400 with a `status` field error unless `actor` may move `task` to `target`."""
    if allowed(task.status, target, actor):
        return
    if task.status == target:
        message = f"Task {task.pk} is already {task.status}."
    else:
        message = f"Task {task.pk} is {task.status}; it cannot become {target}."
    hint = HINTS[actor]
    raise ValidationError({"status": [f"{message} {hint}".strip()]})

"""What a stored change (realtime.models.Change) means to a person: "Queued → Running on bot-3",
"Progress 20% → 40%", "by the liveness sweep".

Described on the server, by comparing a change's row with the one kept before it: the server
has that previous row even for the oldest item of a page, and one description serves both
the rendered page and the items fetched live (tasks/pages.py)."""
from dataclasses import dataclass, field

from django.urls import reverse

from realtime import changes as history
from realtime.actor import AGENT, OPERATOR

from .models import Agent, Task


@dataclass
class Item:
    seq: int
    at: object
    op: str
    tone: str  # a status, or "update"/"deleted": the item's colour, with its words
    lines: list = field(default_factory=list)
    actor: str = ""
    actor_url: str = ""


def actor_text(change):
    """ "by agent bot-3", "by operator alice", "by the liveness sweep"."""
    label = change.actor_label or change.actor_id or "unknown"
    if change.actor_kind == AGENT:
        return f"by agent {label}"
    if change.actor_kind == OPERATOR:
        return f"by operator {label}"
    return "by the liveness sweep" if label == "liveness sweep" else f"by the system ({label})"


def _label(choices, value):
    return dict(choices).get(value, value or "none")


def _agent_name(names, agent_id):
    return names.get(agent_id, f"agent #{agent_id}")


def _excerpt(text, size=120):
    text = " ".join(str(text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


def task_lines(before, after, names):
    """The lines for one task change: `before` is the previous kept row (None when unknown)."""
    status = lambda value: _label(Task.Status.choices, value)  # noqa: E731
    if after is None:
        return ["Deleted"]
    if before is None:
        agent = f" on {_agent_name(names, after['agent'])}" if after.get("agent") else ""
        return [f"{status(after['status'])}{agent} · {after['progress']}%"]
    lines = []
    if before["status"] != after["status"]:
        agent = f" on {_agent_name(names, after['agent'])}" if after.get("agent") and after["status"] == "running" else ""
        lines.append(f"{status(before['status'])} → {status(after['status'])}{agent}")
    if before["progress"] != after["progress"]:
        lines.append(f"Progress {before['progress']}% → {after['progress']}%")
    if before.get("agent") != after.get("agent") and not (lines and " on " in lines[0]):
        lines.append(f"Assigned to {_agent_name(names, after['agent'])}" if after.get("agent") else "Agent cleared")
    if before["title"] != after["title"]:
        lines.append(f"Renamed “{_excerpt(before['title'], 60)}” → “{_excerpt(after['title'], 60)}”")
    if before.get("error") != after.get("error"):
        lines.append(f"Error: {_excerpt(after['error'])}" if after.get("error") else "Error cleared")
    return lines or ["Saved with no visible change"]


def agent_lines(before, after):
    status = lambda value: _label(Agent.Status.choices, value)  # noqa: E731
    if after is None:
        return ["Removed"]
    if before is None:
        return [f"Registered ({status(after['status'])})"]
    lines = []
    if before["status"] != after["status"]:
        if after["status"] == "offline":
            lines.append("Went offline")
        elif before["status"] == "offline":
            lines.append(f"Came back online ({status(after['status'])})")
        else:
            lines.append(f"{status(before['status'])} → {status(after['status'])}")
    if before["name"] != after["name"]:
        lines.append(f"Renamed {before['name']} → {after['name']}")
    if before.get("hostname") != after.get("hostname"):
        lines.append(f"Host {after.get('hostname') or 'cleared'}")
    if not lines and before.get("last_heartbeat") != after.get("last_heartbeat"):
        lines.append("Heard from")
    return lines or ["Saved with no visible change"]


def describe(changes, entity, older=None):
    """Items for `changes` (one object's, newest first). `older` is the change kept just before
    the oldest of them (looked up when not given)."""
    if not changes:
        return []
    if older is None:
        older = history.previous_of(changes[-1])
    rows = [c.row for c in changes] + [older.row if older else None]
    ids = {r.get("agent") for r in rows if r and r.get("agent")}
    names = dict(Agent.objects.filter(pk__in=ids).values_list("pk", "name")) if entity == "task" else {}
    items = []
    for index, change in enumerate(changes):
        before = rows[index + 1]
        if older is None and index == len(changes) - 1:
            before = None  # nothing kept before it: describe the state it recorded
        if change.op == "create":
            before = None
        lines = task_lines(before, change.row, names) if entity == "task" else agent_lines(before, change.row)
        if change.op == "create":
            lines[0] = f"Created · {lines[0]}" if entity == "task" else lines[0]
        tone = "deleted" if change.op == "delete" else (change.status if change.moved else "update")
        item = Item(change.seq, change.at, change.op, tone, lines, actor_text(change))
        if change.actor_kind == AGENT and change.actor_id:
            item.actor_url = reverse("agent_detail", args=[change.actor_id])
        items.append(item)
    return items


def online_items(changes):
    """Items of an agent's online history: its status changes (newest first), each described
    from the status it left, which the change itself keeps."""
    status = lambda value: _label(Agent.Status.choices, value)  # noqa: E731
    items = []
    for change in changes:
        if change.op == "create":
            line = f"Registered ({status(change.status)})"
        elif change.op == "delete":
            line = "Removed"
        elif change.status == "offline":
            line = "Went offline"
        elif change.status_before == "offline":
            line = f"Came back online ({status(change.status)})"
        else:
            line = f"{status(change.status_before)} → {status(change.status)}"
        tone = "deleted" if change.op == "delete" else change.status
        items.append(Item(change.seq, change.at, change.op, tone, [line], actor_text(change)))
    return items

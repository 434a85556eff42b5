"""What a stored change (realtime.models.Change) means to a person: "Queued → Running on bot-3",
"Progress 20% → 40%", "by the liveness sweep".

Described on the server, by comparing a change's row with the one kept before it: the server
has that previous row even for the oldest item of a page, and one description serves both
the rendered page and the items fetched live (tasks/pages.py).

A running task's agent reports every second or two, so a task's timeline folds each run of
consecutive progress-only changes by one actor into one item: "Progress 12% → 92%, 8 reports",
from the time of the first to that of the last. The item is named by its newest change
(`seq`) and knows its oldest (`first_seq`); a live fetch that continues the run at the top of
the page extends that item instead of adding one (`live_task_items`)."""
from dataclasses import dataclass, field

from django.urls import reverse

from realtime import changes as history
from realtime.actor import AGENT, OPERATOR
from realtime.models import Change

from .models import Agent, Task

CHUNK = 200  # changes read at a time while a page of items is gathered
SCAN_LIMIT = 5000  # changes read for one page at most: a longer run continues on the next page
LIVE_LIMIT = 1000  # changes after the page's newest beyond which a live fetch starts over
_LOOK_UP = object()


@dataclass
class Item:
    seq: int  # the newest change it covers
    at: object
    op: str
    tone: str  # a status, or "update"/"deleted": the item's colour, with its words
    lines: list = field(default_factory=list)
    actor: str = ""
    actor_url: str = ""
    first_seq: int = None  # the oldest change it covers (a folded run); seq when one
    first_at: object = None
    count: int = 1
    fold: str = ""  # set on a progress-only change: consecutive items with the same key fold
    progress: tuple = None  # (from, to) of a progress-only item

    def __post_init__(self):
        self.first_seq = self.seq if self.first_seq is None else self.first_seq
        self.first_at = self.at if self.first_at is None else self.first_at

    @property
    def folded(self):
        return self.count > 1

    @property
    def same_day(self):
        return self.first_at.date() == self.at.date()

    def absorb(self, older):
        """Take in `older`, the run of progress changes just before this one."""
        self.first_seq, self.first_at, self.count = older.first_seq, older.first_at, self.count + older.count
        self.progress = (older.progress[0], self.progress[1])
        self.lines = [progress_line(*self.progress, self.count, self.fold)]


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


def progress_line(start, end, count=1, key=""):
    """ "Progress 62% → 68%", or for a folded run "Progress 12% → 92%, 8 reports"."""
    line = f"Progress {start}% → {end}%"
    if count > 1:
        line += f", {count} {'reports' if key.startswith(AGENT + ':') else 'changes'}"
    return line


def progress_step(before, after):
    """(from, to) when only a task's progress changed between two kept rows, else None."""
    if before is None or after is None or before["progress"] == after["progress"]:
        return None
    if any(before.get(name) != after.get(name) for name in ("status", "agent", "title", "error")):
        return None
    return before["progress"], after["progress"]


def fold_key(change):
    """Changes made by the same actor fold together."""
    return f"{change.actor_kind}:{change.actor_id or change.actor_label}"


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


def describe(changes, entity, older=_LOOK_UP):
    """Items for `changes` (one object's, newest first). `older` is the change kept just before
    the oldest of them (looked up when not given; None: nothing is kept before them)."""
    if not changes:
        return []
    if older is _LOOK_UP:
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
        step = progress_step(before, change.row) if entity == "task" and change.op == Change.UPDATE else None
        if step is not None:
            item.fold, item.progress = fold_key(change), step
        items.append(item)
    return items


def fold(items, into=None):
    """Append `items` (newest first, older than those in `into`) to `into`, each run of
    progress-only items with the same key folded into one."""
    into = [] if into is None else into
    for item in items:
        if into and item.fold and into[-1].fold == item.fold:
            into[-1].absorb(item)
        else:
            into.append(item)
    return into


def task_items(task_id, *, before=None, limit=50):
    """(up to `limit` items newest first, below `before`; whether older ones exist), with runs
    of progress reports folded. Reads CHUNK changes at a time until the last item is complete,
    at most SCAN_LIMIT."""
    items, scanned, more = [], 0, False
    while len(items) <= limit and scanned < SCAN_LIMIT:
        rows = history.of_object("task", task_id, before=before, limit=CHUNK + 1)
        more = len(rows) > CHUNK
        chunk = rows[:CHUNK]
        if not chunk:
            break
        fold(describe(chunk, "task", older=rows[CHUNK] if more else None), into=items)
        scanned += len(chunk)
        before = chunk[-1].seq
        if not more:
            break
    if len(items) > limit:
        return items[:limit], True
    return items, more


def live_task_items(task_id, *, after, run=None, limit=50):
    """The items after `after` (the page's newest change), folded, for a live page; None when
    there are too many (the page starts over from task_items()).

    `run` is the oldest change of the page's top item when that item is a run of progress
    changes: if the new changes continue it, the oldest new item takes it in, and the answer's
    second value says which of the page's items it replaces. Returns (items, replaces)."""
    rows = history.of_object("task", task_id, after=after, limit=LIVE_LIMIT + 1)
    if len(rows) > LIVE_LIMIT:
        return None
    if not rows:
        return [], None
    older = history.previous_of(rows[-1])
    items = fold(describe(rows, "task", older=older))
    if len(items) > limit:
        return None
    last = items[-1]
    if (run is not None and run <= after and older is not None and older.seq == after
            and last.fold and last.fold == fold_key(older) and _continue(last, task_id, run, after)):
        return items, after
    return items, None


def _continue(item, task_id, first, last):
    """Extend `item` down over the page's run of progress changes `first`..`last`."""
    kept = Change.objects.filter(entity="task", object_id=task_id)
    start = list(kept.filter(seq__lte=first).order_by("-seq")[:2])
    if len(start) < 2 or start[0].seq != first or not start[0].row or not start[1].row:
        return False
    count = kept.filter(seq__gte=first, seq__lte=last).count()
    run = Item(last, item.at, Change.UPDATE, "update", first_seq=first, first_at=start[0].at, count=count,
               fold=item.fold, progress=(start[1].row["progress"], item.progress[0]))
    item.absorb(run)
    return True


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

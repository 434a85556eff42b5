"""What a stored change (realtime.models.Change) means to a person: "Queued → Running on bot-3",
"Progress 20% → 40%", "by the liveness sweep".

Described on the server, by comparing a change's row with the one kept before it: the server
has that previous row even for the oldest item of a page, and one description serves both
the rendered page and the items fetched live (tasks/pages.py).

A running task's agent reports every second or two, so a task's timeline folds each run of
consecutive progress-only changes by one actor into one line: "Progress 12% → 92%, 8 reports",
from the time of the first to that of the last. The line still holds every change it covers
(`reports`, newest first), each rendered as its own element with its sequence number inside a
collapsed disclosure, so the page keeps one `data-seq` element per change. A line covers at
most FOLD_MAX changes: a longer run is split, counted from its oldest change, so that the
newest line is the one that grows. The item is named by its newest change (`seq`) and knows
its oldest (`first_seq`); a live fetch that continues the run at the top of the page extends
that line instead of adding one (`live_task_items`)."""
from dataclasses import dataclass, field

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from realtime import changes as history
from realtime.actor import AGENT, OPERATOR
from realtime.models import Change

from .models import Agent, Task

CHUNK = 200  # changes read at a time while a page of items is gathered
SCAN_LIMIT = 5000  # changes read for one page at most: a longer run continues on the next page
FOLD_MAX = 500  # changes in one folded line at most: a longer run is split, counted from its oldest
LIVE_LIMIT = 1000  # changes after the page's newest beyond which a live fetch starts over
_LOOK_UP = object()


@dataclass(frozen=True)
class Report:
    """One progress-only change inside a folded line: its number, time and progress (from, to)."""
    seq: int
    at: object
    start: int
    end: int

    def html(self):
        """Its element in the line's list: `<li class="change report" data-seq>` with its time
        (in the current time zone, named) and progress. Written here rather than in
        templates/tasks/_change.html because a line may list hundreds: formatted directly, a
        report costs a few microseconds instead of the template's date filters' much more."""
        local = timezone.localtime(self.at)
        iso, zone = local.isoformat(), local.tzname() or ""
        return format_html(
            '<li class="change report" data-seq="{}"><time datetime="{}">{}</time> <abbr class="tz" title="{}">{}</abbr>'
            ' · {}% → {}% · <span class="change-seq">#{}</span></li>',
            self.seq, iso, local.strftime("%Y-%m-%d %H:%M:%S"), zone, zone, self.start, self.end, self.seq,
        )


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
    reports: list = field(default_factory=list)  # a progress-only item's changes, newest first

    def __post_init__(self):
        self.first_seq = self.seq if self.first_seq is None else self.first_seq
        self.first_at = self.at if self.first_at is None else self.first_at

    @property
    def folded(self):
        return self.count > 1

    @property
    def same_day(self):
        return self.first_at.date() == self.at.date()

    @property
    def unit(self):
        """What a folded line counts: an agent's reports, or anyone else's changes."""
        return "reports" if self.fold.startswith(AGENT + ":") else "changes"

    def absorb(self, older):
        """Take in `older`, the run of progress changes just before this one."""
        self.first_seq, self.first_at, self.count = older.first_seq, older.first_at, self.count + older.count
        self.progress = (older.progress[0], self.progress[1])
        self.lines = [progress_line(*self.progress, self.count, self.fold)]
        self.reports = self.reports + older.reports


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
            item.reports = [Report(change.seq, change.at, *step)]
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


def run_item(like, reports, *, first_seq=None, first_at=None, count=None, start=None):
    """The line for progress-only `reports` (newest first) by the actor of `like`. For a line
    that goes on below them (a live page's run, extended), where it starts (`first_seq`,
    `first_at`, the progress it `start`s from) and how many changes it covers in all."""
    newest, oldest = reports[0], reports[-1]
    count = len(reports) if count is None else count
    start = oldest.start if start is None else start
    return Item(
        newest.seq, newest.at, Change.UPDATE, "update", [progress_line(start, newest.end, count, like.fold)],
        like.actor, like.actor_url, first_seq=oldest.seq if first_seq is None else first_seq,
        first_at=oldest.at if first_at is None else first_at, count=count, fold=like.fold,
        progress=(start, newest.end), reports=list(reports),
    )


def split(item, size=None):
    """`item` as lines of at most `size` (FOLD_MAX) changes, newest first, counted from its
    oldest change: only the newest line is ever short, and it is the one a live page extends."""
    size = FOLD_MAX if size is None else size
    if item.count <= size or len(item.reports) != item.count:
        return [item]
    oldest_first = item.reports[::-1]
    blocks = [oldest_first[i:i + size][::-1] for i in range(0, len(oldest_first), size)]
    return [run_item(item, block) for block in reversed(blocks)]


def split_runs(items, size=None):
    return [line for item in items for line in split(item, size)]


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
    items = split_runs(items)
    if len(items) > limit:
        return items[:limit], True
    return items, more


def live_task_items(task_id, *, after, run=None, limit=50):
    """The items after `after` (the page's newest change), folded, for a live page; None when
    there are too many (the page starts over from task_items()). Returns (items, replaces,
    extends).

    `run` is the oldest change of the page's top item when that item is progress-only (a
    folded line, or one change that may start one). If the new changes continue it, the oldest
    new item is that line extended (up to FOLD_MAX changes in all; the rest are newer lines):
    - the page's top item is one change (`replaces` = `after`): the item is the whole line,
      that change included, and takes the top item's place;
    - the page's top item is a folded line (`extends` = `after`): the item carries the line's
      new words, times and count, and only the new changes; the page puts them on top of the
      line's own, which it keeps."""
    rows = history.of_object("task", task_id, after=after, limit=LIVE_LIMIT + 1)
    if len(rows) > LIVE_LIMIT:
        return None
    if not rows:
        return [], None, None
    older = history.previous_of(rows[-1])
    items = fold(describe(rows, "task", older=older))
    last, page, replaces, extends = items[-1], None, None, None
    if (run is not None and run <= after and older is not None and older.seq == after
            and last.fold and last.fold == fold_key(older)):
        page = _page_run(task_id, run, after, last.fold)
    if page is not None and page.count < FOLD_MAX:
        room = FOLD_MAX - page.count
        take, rest = last.reports[-room:], last.reports[:-room]
        shown = take + (page.reports if page.count == 1 else [])
        joined = run_item(last, shown, first_seq=page.first_seq, first_at=page.first_at,
                          count=page.count + len(take), start=page.start)
        items = split_runs(items[:-1]) + (split(run_item(last, rest)) if rest else []) + [joined]
        replaces, extends = (after, None) if page.count == 1 else (None, after)
    else:
        items = split_runs(items)
    if len(items) > limit:
        return None
    return items, replaces, extends


@dataclass
class _PageRun:
    first_seq: int
    first_at: object
    count: int
    start: int  # the progress the run starts from
    reports: list


def _page_run(task_id, first, last, key):
    """The page's top line, changes `first`..`last` of a run by `key`, as the server keeps
    them; None when they are not such a run (or no longer kept)."""
    kept = Change.objects.filter(entity="task", object_id=task_id)
    start = list(kept.filter(seq__lte=first).order_by("-seq")[:2])
    if len(start) < 2 or start[0].seq != first or start[0].op != Change.UPDATE or fold_key(start[0]) != key:
        return None
    step = progress_step(start[1].row, start[0].row)
    if step is None:
        return None
    count = len(kept.filter(seq__gte=first, seq__lte=last).values_list("seq", flat=True)[:FOLD_MAX + 1])
    if count > FOLD_MAX:
        return None
    return _PageRun(first, start[0].at, count, step[0], [Report(first, start[0].at, *step)])


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

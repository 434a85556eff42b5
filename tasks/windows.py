"""What a dashboard's view of the tasks means (docs/protocol.md, "Views").

A view filters tasks by status (several at once), by agent, and by title: `q` is a substring
of the title, matched case-insensitively for the letters A to Z (other characters match as
they are), or `#<id>` for one task. The same meaning is written three times, and the three
must agree exactly, since each change is judged in memory and each window is read from the
database: `matcher` (a check of a task's values), `query` (the database), `count`.

Why only A-Z ignore case: tasks/search.py. The database searches the stored folded title
(`Task.title_folded`), the memory folds the row's title the same way. tests/test_windows.py
checks the three forms against each other and against a definition written from the protocol.

Indexes (tasks/migrations): (status, id), (agent, id) and (agent, status, id) serve the
status and agent filters newest first; on PostgreSQL a trigram index on the folded title
serves `q`; on SQLite `q` is a LIKE scan (measured at 1,000,000 tasks: 130 to 240 ms for a
sync; FTS5's trigram index was measured too and was slower for common words, 170 to 210 ms,
with a trigger on every write; docs/performance.md).
"""
import re

from realtime.viewspec import View, ViewError, ViewSpec

from .models import Task
from .search import fold

ID_QUERY = re.compile(r"#(\d{1,18})")
MAX_QUERY = 200  # a title is at most 200 characters
CURRENT_LIMIT = 1000  # running tasks sent beside the window (one per busy agent)


class TaskViews(ViewSpec):
    fields = ("status", "agent_id", "title")
    row_keys = {"agent_id": "agent"}
    sides = ("current",)
    statuses = tuple(value for value, _ in Task.Status.choices)

    # Reading a client's view ------------------------------------------------------------

    def parse(self, raw, layout):
        if not isinstance(raw, dict):
            raise ViewError("view must be an object: {\"status\": [...], \"agent\": id, \"q\": text, \"limit\": n}")
        statuses = self._statuses(raw.get("status"))
        agent = raw.get("agent")
        if agent is not None and (not isinstance(agent, int) or isinstance(agent, bool) or agent < 1):
            raise ViewError("view.agent must be an agent id (a positive integer) or null")
        q, task_id = self._query(raw.get("q"))
        limit = raw.get("limit", self.default_limit)
        limit = self.default_limit if limit is None else limit
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= self.max_limit:
            raise ViewError(f"view.limit must be an integer from 1 to {self.max_limit} (default {self.default_limit})")
        current = raw.get("current", False)
        if current is None:
            current = False
        if not isinstance(current, bool):
            raise ViewError("view.current must be true or false")
        filters = (statuses, agent, None if q is None else fold(q), task_id)
        echo = {"status": None if statuses is None else list(statuses), "agent": agent, "q": raw_q(raw, q, task_id),
                "limit": limit, "current": current}
        sides = ("current",) if current else ()
        return View((filters, limit, sides), limit, echo, self._matcher(filters, layout), filters, sides, spec=self)

    def _statuses(self, value):
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ViewError(f"view.status must be a list of statuses ({', '.join(self.statuses)}) or null for all")
        unknown = sorted(set(value) - set(self.statuses))
        if unknown:
            raise ViewError(f"view.status has unknown statuses {unknown}; known: {', '.join(self.statuses)}")
        return tuple(s for s in self.statuses if s in value)

    def _query(self, value):
        """(title substring or None, task id or None)."""
        if value is None:
            return None, None
        if not isinstance(value, str):
            raise ViewError("view.q must be text (a part of the title, or #<id>) or null")
        if len(value) > MAX_QUERY:
            raise ViewError(f"view.q is longer than {MAX_QUERY} characters (a title is at most {MAX_QUERY})")
        value = value.strip()
        if not value:
            return None, None
        by_id = ID_QUERY.fullmatch(value)
        if by_id:
            return None, int(by_id.group(1))
        return value, None

    def side(self, name, layout):
        filters = (("running",), None, None, None)
        return View(("side", name), CURRENT_LIMIT, {"side": name}, self._matcher(filters, layout), filters, side=True, spec=self)

    # The three forms of one meaning ------------------------------------------------------

    def _matcher(self, filters, layout):
        statuses, agent, q, task_id = filters
        at_status, at_agent, at_title = layout.index("status"), layout.index("agent_id"), layout.index("title")
        allowed = frozenset(statuses) if statuses is not None else None

        def matches(row_id, values):
            if task_id is not None and row_id != task_id:
                return False
            if allowed is not None and values[at_status] not in allowed:
                return False
            if agent is not None and values[at_agent] != agent:
                return False
            return q is None or q in fold(values[at_title] or "")
        return matches

    def query(self, view, below=None):
        statuses, agent, q, task_id = view.filters
        tasks = Task.objects.all()
        if statuses is not None:
            tasks = tasks.filter(status__in=statuses)
        if agent is not None:
            tasks = tasks.filter(agent_id=agent)
        if task_id is not None:
            tasks = tasks.filter(pk=task_id)
        if q is not None:
            tasks = tasks.filter(title_folded__contains=q)  # q is folded too (parse)
        if below is not None:
            tasks = tasks.filter(pk__lt=below)
        return tasks

    def count(self, view, counts):
        statuses, agent, q, task_id = view.filters
        if agent is None and q is None and task_id is None:
            return sum(counts.get(s, 0) for s in (self.statuses if statuses is None else statuses))
        return self.query(view).count()


def raw_q(raw, q, task_id):
    """The view's `q` as echoed: the client's text (trimmed), or None."""
    if task_id is not None:
        return f"#{task_id}"
    return q


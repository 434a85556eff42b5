"""A view's window kept change by change (realtime/windows.py), and the three forms of a task
view's meaning (tasks/windows.py: the matcher, the database query and the count) against
each other and against a definition written here from docs/protocol.md."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from realtime import registry
from realtime.windows import Held, Window
from tasks.models import Task
from tasks.windows import TaskViews

STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
LAYOUT = ("status", "agent_id", "title")


def ascii_fold(text):
    """docs/protocol.md: `q` ignores case for the letters A to Z only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def defined_match(view, row_id, values):
    """The view's meaning, written from the protocol (not from the code under test)."""
    status, agent, title = values
    if view.get("status") is not None and status not in view["status"]:
        return False
    if view.get("agent") is not None and agent != view["agent"]:
        return False
    q = (view.get("q") or "").strip()
    if q.startswith("#") and q[1:].isdigit():
        return row_id == int(q[1:])
    return not q or ascii_fold(q) in ascii_fold(title)


# The window, against a reference table in memory ------------------------------------------


class Model:
    """A table (id -> values and version), the window of one view over it, and a client that
    applies what the window's diffs say. A refill is answered from the table as it was when
    asked, and merged some steps later, as a database read that raced later writes."""

    def __init__(self, view, limit, rng, reserve=None):
        self.view, self.rng = view, rng
        self.rows = {}  # id -> (version, values)
        self.seq = 0
        self.next_id = 1
        self.parsed = TaskViews().parse(dict(view, limit=limit), LAYOUT)
        self.window = Window(limit, self.parsed.matcher, reserve)
        self.client = {}
        self.inflight = []  # (due step, head, rows) of refills on their way

    def matching(self):
        return sorted((i for i, (_, v) in self.rows.items() if defined_match(self.view, i, v)), reverse=True)

    def seed(self):
        newest = self.matching()[:self.window.capacity]
        self.window.seed([(i, Held(self.rows[i][0], str(i), self.rows[i][1])) for i in newest], len(self.matching()))
        self.client = {i: self.rows[i][0] for i in self.window.window_ids()}

    def write(self, row_id, values):
        self.seq += 1
        before = self.rows.get(row_id, (None, None))[1]
        if values is None:
            self.rows.pop(row_id, None)
            self.window.apply(self.seq, row_id, before, None, None)
        else:
            self.rows[row_id] = (self.seq, values)
            self.window.apply(self.seq, row_id, before, values, Held(self.seq, str(row_id), values))

    def step(self, step):
        for due, head, rows in [r for r in self.inflight if r[0] <= step]:
            self.inflight.remove((due, head, rows))
            self.window.refill(rows, head)
        if self.window.wants_refill:
            below, want = self.window.refill_request()
            rows = [(i, Held(self.rows[i][0], str(i), self.rows[i][1])) for i in self.matching() if i < below][:want]
            self.inflight.append((step + self.rng.choice([0, 0, 1, 3]), self.seq, rows))
        if self.window.short:
            return False
        upserts, leaving = self.window.diff()
        for row_id, left in leaving:
            assert left == (row_id in self.rows), (row_id, left)
            self.client.pop(row_id)
        for row_id, held in upserts:
            self.client[row_id] = held.version
        return True

    def check(self):
        expected = self.matching()
        assert self.window.matched == len(expected)
        top = expected[:self.window.limit]
        assert {i: self.rows[i][0] for i in top} == self.client
        assert self.window.window_ids() == sorted(top)


TITLES = ["Invoice 7", "invoice", "INVOICE run", "report", "Ärger", "ärger", "build #3", "x"]
views = st.fixed_dictionaries({}, optional={
    "status": st.lists(st.sampled_from(STATUSES), unique=True, max_size=3),
    "agent": st.integers(1, 3),
    "q": st.sampled_from(["invoice", "INV", "ärg", "Ä", "#5", "#12", "run", " report "]),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=views, limit=st.integers(1, 6), reserve=st.sampled_from([None, 1, 2, 4]), seed=st.integers(0, 10**6),
       steps=st.integers(1, 80))
def test_a_window_equals_its_definition_after_every_change(view, limit, reserve, seed, steps):
    # A small reserve and a table larger than the window make the window read more rows
    # often, with answers that land after later changes.
    model = run_model(view, limit, reserve, seed, steps, delete_absent=False)
    for extra in range(steps, steps + 10):  # let every refill land
        if model.step(extra) and not model.inflight:
            break
    if not model.window.short:
        model.check()


def run_model(view, limit, reserve, seed, steps=60, delete_absent=True):
    """A table of random rows, the window seeded from it, then `steps` random writes (new rows,
    changes, deletions), each followed by a step and, when the window can answer, a check.
    `delete_absent`: a deletion drawn while the table is empty deletes a row that never was."""
    rng = random.Random(seed)
    model = Model(view, limit, rng, reserve)
    for _ in range(rng.randint(0, 80)):
        model.write(model.next_id, (rng.choice(STATUSES), rng.choice([None, 1, 2, 3]), rng.choice(TITLES)))
        model.next_id += 1
    model.seed()
    for step in range(steps):
        kind = rng.random()
        if kind < 0.35 or not model.rows:
            row_id = model.next_id
            model.next_id += 1
        else:
            row_id = rng.choice(list(model.rows))
        if kind > 0.85 and (delete_absent or model.rows):
            model.write(row_id, None)
        else:
            model.write(row_id, (rng.choice(STATUSES), rng.choice([None, 1, 2, 3]), rng.choice(TITLES)))
        if model.step(step):
            model.check()
    return model


@pytest.mark.parametrize("view", [{"status": ["queued", "running"]}, {"agent": 2}, {"q": "invoice"}, {}])
def test_windows_that_read_often_stay_exact(view):
    """Many seeds of a busy table under a view that matches about half of it: the window reads
    more rows again and again, and the answers land after later changes."""
    for seed in range(150):
        run_model(view, 3, 2, seed)


def test_a_window_short_of_rows_sends_nothing_until_it_has_them():
    model = Model({"status": ["queued"]}, 3, random.Random(1))
    for i in range(1, 21):
        model.write(i, ("queued", None, "t"))
    model.next_id = 21
    model.seed()
    assert model.window.capacity == 13  # 3 shown, 10 in reserve
    for i in range(20, 6, -1):  # 14 leave the window at once: more than the reserve holds
        model.write(i, ("failed", None, "t"))
    assert model.window.short
    assert model.step(0) is False  # nothing is sent; the rows it lacks are asked for
    assert model.window.pending is not None
    step = 1
    while not model.step(step):  # the read lands a few steps later
        step += 1
        assert step < 10, "the refill never landed"
    model.check()


# The three forms of a task view's meaning, on the database ---------------------------------


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(view=views, data=st.lists(st.tuples(st.sampled_from(STATUSES), st.sampled_from(
    ["Invoice 7", "invoice", "INVOICE run", "report", "Ärger", "ärger", "build #3", "x", "50% off_sale", "a\\b"])), min_size=1, max_size=25))
def test_the_matcher_the_query_and_the_count_agree_with_the_definition(view, data):
    from tasks.models import Agent

    Task.objects.all().delete()
    agents = [Agent.objects.get_or_create(name=f"agent-{i}")[0] for i in range(1, 4)]
    rows = [Task(title=title, status=status, agent=agents[i % 3] if status == "running" else None)
            for i, (status, title) in enumerate(data)]
    for row in rows:
        row.save()
    entity = registry.windowed()
    spec = entity.views
    view = dict(view)
    if view.get("agent") is not None:
        view["agent"] = agents[view["agent"] - 1].pk
    q = (view.get("q") or "").strip()
    if q.startswith("#"):  # an id that exists in this table
        view["q"] = f"#{rows[int(q[1:]) % len(rows)].pk}"
    parsed = spec.parse(view, entity.watched)
    values = {t.pk: (t.status, t.agent_id, t.title) for t in Task.objects.all()}
    defined = sorted((i for i, v in values.items() if defined_match(view, i, v)), reverse=True)
    assert [i for i, v in sorted(values.items(), reverse=True) if parsed.matcher(i, v)] == defined
    assert sorted(spec.query(parsed).values_list("pk", flat=True), reverse=True) == defined
    from realtime import counts

    per_status = counts.read(entity)[0]
    assert spec.count(parsed, per_status) == len(defined)
    assert [t.pk for t in spec.newest(parsed, 2)] == defined[:2]


@pytest.mark.parametrize("view, message", [
    ("all", "view must be an object"),
    ({"status": "queued"}, "view.status must be a list"),
    ({"status": ["queued", "paused"]}, "unknown statuses ['paused']"),
    ({"agent": "3"}, "view.agent must be an agent id"),
    ({"agent": True}, "view.agent must be an agent id"),
    ({"q": 7}, "view.q must be text"),
    ({"q": "x" * 201}, "longer than 200"),
    ({"limit": 0}, "from 1 to 1000"),
    ({"limit": 1001}, "from 1 to 1000"),
    ({"limit": 2.5}, "from 1 to 1000"),
    ({"current": "yes"}, "true or false"),
])
def test_a_malformed_view_says_which_key_is_wrong(view, message):
    from realtime.viewspec import ViewError

    with pytest.raises(ViewError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TaskViews().parse(view, LAYOUT)


def test_a_view_fills_in_its_defaults_and_ignores_unknown_keys():
    parsed = TaskViews().parse({"status": ["failed", "queued", "failed"], "q": "  Build ", "colour": "red"}, LAYOUT)
    assert parsed.echo == {"status": ["queued", "failed"], "agent": None, "q": "Build", "limit": 200, "current": False}
    assert TaskViews().parse({"q": "#42"}, LAYOUT).echo["q"] == "#42"
    assert TaskViews().parse({"status": [], "q": ""}, LAYOUT).echo["status"] == []


@pytest.mark.django_db
def test_every_write_path_keeps_the_folded_title():
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from tasks.search import fold

    task = Task.objects.create(title="Über INVOICE")
    Task.objects.bulk_create([Task(title="Bulk ÄB")])
    Task.objects.filter(pk=task.pk).update(title=Concat(Value("ÉTÉ "), F("title")))  # an expression: folded by the database
    other = Task.objects.get(title="Bulk ÄB")
    other.title = "Bulk ÖZ"
    Task.objects.bulk_update([other], ["title"])
    Task.objects.filter(pk=other.pk).update(title="Plain TEXT")
    for title, folded in Task.objects.values_list("title", "title_folded"):
        assert folded == fold(title), (title, folded)
    assert fold("ÉTÉ Über INVOICE") == "ÉtÉ Über invoice"

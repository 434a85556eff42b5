"""The task page on the server (tasks/pages.py, tasks/timeline.py): runs of progress reports
folded into one timeline item, in the rendered page and in the items the live page fetches;
the time zone of the times shown; and the operator's actions (who gets them, and "mark
failed" with a reason)."""
import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from realtime import actor
from realtime.models import Change
from tasks import domain
from tasks import timeline as timeline_module
from tasks.models import Agent, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(staff_client):
    return staff_client


def user_with(django_user_model, name, *codenames, staff=True):
    user = django_user_model.objects.create_user(name, password=f"pw-{name}-123", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="tasks", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find(self, test):
        return next((node for node in self.walk() if test(node)), None)


class Tree(HTMLParser):
    """A page or a fragment as a tree of Nodes (the templates close every element they open)."""
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {})
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.at)
        self.at.children.append(node)
        if tag not in self.VOID:
            self.at = node

    def handle_endtag(self, tag):
        node = self.at
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.at = node.parent

    def handle_data(self, data):
        self.at.children.append(data)


def timeline(html):
    """The timeline's list (`#timeline`) of a page, or the root of a fragment."""
    root = Tree(html).root
    return root.find(lambda n: n.attrs.get("id") == "timeline") or root


def items(html):
    """[(attributes, text)] of the timeline's items (the list's own children), newest first."""
    return [
        ({k: v for k, v in node.attrs.items() if k.startswith("data-")}, " ".join(node.text().split()))
        for node in timeline(html).children if isinstance(node, Node) and node.tag == "li"
    ]


def change_seqs(html):
    """Every `data-seq` in the timeline, in document order."""
    return [int(node.attrs["data-seq"]) for node in timeline(html).walk() if "data-seq" in node.attrs]


def seqs(task, **filters):
    return list(Change.objects.filter(entity="task", object_id=task.pk, **filters).order_by("-seq").values_list("seq", flat=True))


def as_agent(who, **values):
    """An update of the task made by agent `who` (as the agent API names it)."""
    with actor.acting_as("agent", who.pk, who.name):
        Task.objects.filter(pk=values.pop("pk")).update(**values)


@pytest.fixture
def running():
    """A task claimed by bot-1 (as the agent), then eight progress reports 12% → 92%."""
    agent = Agent.objects.create(name="bot-1", status="idle")
    task = Task.objects.create(title="Render the report")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    for progress in (12, 25, 38, 50, 62, 68, 80, 92):
        as_agent(agent, pk=task.pk, progress=progress)
    return task, agent


def norm(text):
    return " ".join(text.split())


def test_a_run_of_progress_reports_is_one_line_with_one_element_per_change(operator, running):
    task, _ = running
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    shown = items(html)
    stored = seqs(task)
    assert len(shown) == 3  # the run, the claim, the creation
    attrs, text = shown[0]
    assert "Progress 0% → 92%, 8 reports" in text and "by agent bot-1" in text
    assert "data-seq" not in attrs, "the line is no change of its own"
    assert (int(attrs["data-last-seq"]), int(attrs["data-first-seq"]), attrs["data-count"]) == (stored[0], stored[7], "8")
    assert "Queued → Running on bot-1" in shown[1][1]
    # Every stored change is one element with data-seq, newest first, the run's included.
    assert change_seqs(html) == stored
    # The run's reports are in a collapsed disclosure whose summary is the line people read.
    details = timeline(html).find(lambda n: n.tag == "details")
    assert "open" not in details.attrs
    assert norm(details.find(lambda n: n.tag == "summary").text()) == "Progress 0% → 92%, 8 reports"
    reports = [n for n in details.walk() if "data-seq" in n.attrs]
    assert [int(r.attrs["data-seq"]) for r in reports] == stored[:8]
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC · 80% → 92% · #{stored[0]}", norm(reports[0].text()))
    assert norm(reports[-1].text()).endswith(f"UTC · 0% → 12% · #{stored[7]}")
    # The times say their zone: each item's, each report's, and the timeline's note.
    assert "UTC" in text and "times in UTC" in html
    assert re.search(r'data-field="created_at"><time[^>]*>[\d-]+ [\d:]+ UTC</time>', html)


def test_another_actor_or_another_field_ends_a_run(operator, running):
    task, agent = running
    Task.objects.filter(pk=task.pk).update(progress=93)  # the system, not the agent
    as_agent(agent, pk=task.pk, progress=94)
    as_agent(agent, pk=task.pk, progress=95, title="Render the big report")
    as_agent(agent, pk=task.pk, progress=96)
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    lines = [text for _, text in items(html)]
    assert "Progress 95% → 96%" in lines[0] and "reports" not in lines[0]
    assert "Progress 94% → 95%" in lines[1] and "Renamed" in lines[1]
    assert "Progress 93% → 94%" in lines[2] and "by agent" in lines[2]
    assert "Progress 92% → 93%" in lines[3] and "by the system" in lines[3]
    assert "Progress 0% → 92%, 8 reports" in lines[4]
    assert change_seqs(html) == seqs(task)


def test_the_live_fetch_extends_the_run_at_the_top_of_the_page(operator, running):
    task, agent = running
    page = items(operator.get(f"/tasks/{task.pk}/").content.decode())
    newest, first = int(page[0][0]["data-last-seq"]), int(page[0][0]["data-first-seq"])
    as_agent(agent, pk=task.pk, progress=95)
    as_agent(agent, pk=task.pk, progress=99)
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": newest, "run": first}).json()
    assert answer["reset"] is False and answer["extends"] == newest and "replaces" not in answer
    [item] = answer["items"]
    [(attrs, text)] = items(item["html"])
    assert "Progress 0% → 99%, 10 reports" in text
    assert (item["seq"], int(attrs["data-last-seq"]), int(attrs["data-first-seq"]), attrs["data-count"]) == (
        seqs(task)[0], seqs(task)[0], first, "10")
    assert change_seqs(item["html"]) == seqs(task)[:2], "only the new reports: the page keeps the line's own"
    # A page whose top item is not a run (or that does not say) gets the new run on its own.
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": newest}).json()
    assert "replaces" not in answer and "extends" not in answer
    assert "Progress 92% → 99%, 2 reports" in items(answer["items"][0]["html"])[0][1]
    assert change_seqs(answer["items"][0]["html"]) == seqs(task)[:2]
    # A status change does not join the run: a new item on top, the run left as it is.
    top = seqs(task)[0]
    with actor.acting_as("operator", 1, "maria"):
        Task.objects.filter(pk=task.pk).update(status="failed", error="stopped by hand")
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": top, "run": first}).json()
    assert "replaces" not in answer and "extends" not in answer and len(answer["items"]) == 1
    assert "Running → Failed" in items(answer["items"][0]["html"])[0][1]
    assert change_seqs(answer["items"][0]["html"]) == seqs(task)[:1]


def test_a_second_report_turns_the_top_change_into_a_line_that_replaces_it(operator):
    agent = Agent.objects.create(name="bot-4")
    task = Task.objects.create(title="Index")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    as_agent(agent, pk=task.pk, progress=10)
    [(attrs, text), *_] = items(operator.get(f"/tasks/{task.pk}/").content.decode())
    top = int(attrs["data-seq"])
    assert attrs["data-fold"] == f"agent:{agent.pk}" and "data-count" not in attrs and "Progress 0% → 10%" in text
    as_agent(agent, pk=task.pk, progress=20)
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": top, "run": top}).json()
    assert answer["replaces"] == top and "extends" not in answer
    [item] = answer["items"]
    [(attrs, text)] = items(item["html"])
    assert "Progress 0% → 20%, 2 reports" in text and attrs["data-count"] == "2"
    assert change_seqs(item["html"]) == seqs(task)[:2], "the whole line, the change it replaces included"
    # A `run` that is no run of this task's (a page that lies) is not taken up.
    claim = seqs(task)[2]
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"after": top, "run": claim}).json()
    assert "replaces" not in answer and "extends" not in answer
    assert change_seqs(answer["items"][0]["html"]) == seqs(task)[:1]


def test_a_run_longer_than_a_line_is_split_from_its_oldest_change(operator, running, monkeypatch):
    monkeypatch.setattr(timeline_module, "FOLD_MAX", 3)
    task, _ = running
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    stored = seqs(task)
    counts = [(a.get("data-count", "1"), a.get("data-first-seq", a.get("data-seq"))) for a, _ in items(html)[:3]]
    assert counts == [("2", str(stored[1])), ("3", str(stored[4])), ("3", str(stored[7]))]
    assert [t.split(" 20")[0] for _, t in items(html)[:3]] == [
        "Progress 68% → 92%, 2 reports", "Progress 38% → 68%, 3 reports", "Progress 0% → 38%, 3 reports"]
    assert change_seqs(html) == stored


class LivePage:
    """A live page's timeline as static/detail/timeline.js and view.js keep it, on parsed
    items: [attributes, the item's own text, [its reports' (attributes, text)]], newest first."""

    def __init__(self, client, task, html):
        self.client, self.task = client, task
        self.items = [shape(n) for n in top_level(html)]

    @property
    def newest(self):
        attrs = self.items[0][0]
        return int(attrs.get("data-seq") or attrs["data-last-seq"])

    def fetch(self):
        top = self.items[0][0]
        query = {"after": self.newest}
        if "data-fold" in top:
            query["run"] = int(top.get("data-first-seq") or top["data-seq"])
        answer = self.client.get(f"/tasks/{self.task.pk}/timeline", query).json()
        assert answer["reset"] is False
        fresh = [(item["seq"], shape(node)) for item in answer["items"] for node in top_level(item["html"])]
        fresh = [s for seq, s in fresh if seq > self.newest]
        if fresh and answer.get("extends"):
            line = next(i for i in self.items if i[0].get("data-last-seq") == str(answer["extends"]))
            attrs, text, reports = fresh.pop()
            line[:] = [attrs, text, reports + line[2]]
        if fresh and answer.get("replaces"):
            self.items = [i for i in self.items if i[0].get("data-seq") != str(answer["replaces"])]
        self.items[:0] = fresh
        return answer

    def seqs(self):
        return [int(s) for attrs, _, reports in self.items
                for s in ([attrs["data-seq"]] if "data-seq" in attrs else [r["data-seq"] for r, _ in reports])]


def top_level(html):
    return [n for n in timeline(html).children if isinstance(n, Node) and n.tag == "li"]


def shape(node):
    listed = node.find(lambda n: "fold-list" in n.attrs.get("class", "").split())
    reports = [(n.attrs, norm(n.text())) for n in listed.children if isinstance(n, Node)] if listed else []
    own = node.text().replace(listed.text(), "") if listed else node.text()
    return [dict(node.attrs), norm(own), reports]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_live_page_ends_as_a_reload_renders_it(operator, monkeypatch, seed):
    """Reports from two agents, edits and fetches in a random order: the page the live answers
    build is the page a reload renders, with one data-seq element per change, newest first;
    lines of at most FOLD_MAX (here 3) changes, so lines fill up and new ones start live too."""
    import random

    monkeypatch.setattr(timeline_module, "FOLD_MAX", 3)
    rng = random.Random(seed)
    one, two = Agent.objects.create(name="bot-1"), Agent.objects.create(name="bot-2")
    task = Task.objects.create(title="Mixed")
    as_agent(one, pk=task.pk, status="running", agent=one)
    page = LivePage(operator, task, operator.get(f"/tasks/{task.pk}/").content.decode())
    progress, extended, replaced = 0, 0, 0
    for step in range(40):
        roll = rng.random()
        progress = progress % 99 + 1
        if roll < 0.65:
            as_agent(one, pk=task.pk, progress=progress)
        elif roll < 0.8:
            as_agent(two, pk=task.pk, progress=progress)
        elif roll < 0.9:
            Task.objects.filter(pk=task.pk).update(progress=progress)  # the system
        else:
            as_agent(one, pk=task.pk, title=f"Mixed {step}")
        if rng.random() < 0.6:
            answer = page.fetch()
            extended += "extends" in answer
            replaced += "replaces" in answer
    page.fetch()
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert page.seqs() == seqs(task) == change_seqs(html)
    assert page.items == [shape(n) for n in top_level(html)]
    assert extended and replaced, (extended, replaced)


def test_older_pages_count_items_not_changes(operator):
    task = Task.objects.create(title="t0")
    for i in range(1, 61):  # 60 renames: nothing folds
        Task.objects.filter(pk=task.pk).update(title=f"t{i}")
    agent = Agent.objects.create(name="bot")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    for report in range(300):  # one run of 300 reports: one item
        as_agent(agent, pk=task.pk, progress=report % 100 + 1)
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    page = items(html)
    assert len(page) == 50 and page[0][0]["data-count"] == "300"
    oldest = int(page[-1][0]["data-seq"])
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"before": oldest}).json()
    assert answer["older"] is False
    assert [i["seq"] for i in answer["items"]] == seqs(task)[349:]
    assert "Created" in items(answer["items"][-1]["html"])[0][1]
    # Each change once, none missing, across the page and the older one.
    assert change_seqs(html) + [s for i in answer["items"] for s in change_seqs(i["html"])] == seqs(task)


def test_older_pages_list_each_change_once_when_a_page_ends_inside_a_run(operator, monkeypatch):
    monkeypatch.setattr(timeline_module, "FOLD_MAX", 4)
    agent = Agent.objects.create(name="bot")
    task = Task.objects.create(title="long")
    as_agent(agent, pk=task.pk, status="running", agent=agent)
    for report in range(250):  # one run: 63 lines of at most 4
        as_agent(agent, pk=task.pk, progress=report % 100 + 1)
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    shown = change_seqs(html)
    assert len(items(html)) == 50
    answer = operator.get(f"/tasks/{task.pk}/timeline", {"before": shown[-1]}).json()
    older = [s for i in answer["items"] for s in change_seqs(i["html"])]
    assert answer["older"] is False and shown + older == seqs(task)
    assert [a.get("data-count") for a, _ in items(html)][:2] == ["2", "4"], "counted from the run's oldest change"


# The operator's actions ------------------------------------------------------------------------


def test_an_operator_gets_the_actions_a_viewer_does_not(operator, django_user_model, running):
    task, _ = running
    html = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert 'id="task-actions"' in html and 'id="confirm-dialog"' in html
    for action in ("cancel", "requeue", "fail"):
        assert f'data-action="{action}"' in html
    assert re.search(r'data-action="requeue" hidden>', html), "a running task cannot be requeued"
    for client in (user_with(django_user_model, "viewer", "view_task"),
                   user_with(django_user_model, "nonstaff", "view_task", "change_task", staff=False)):
        page = client.get(f"/tasks/{task.pk}/")
        assert page.status_code == 200
        assert "task-actions" not in page.content.decode() and "confirm-dialog" not in page.content.decode()


def test_marking_failed_with_a_reason(operator, running):
    task, agent = running
    Agent.objects.filter(pk=agent.pk).update(status="busy")
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "The input bucket is gone."})
    assert answer.status_code == 200, answer.content
    stored = Task.objects.get(pk=task.pk)
    assert answer.json() == {"id": task.pk, "status": "failed", "version": stored.version, "error": "The input bucket is gone."}
    assert (stored.status, stored.error) == ("failed", "The input bucket is gone.")
    assert Agent.objects.get(pk=agent.pk).status == "idle"
    change = Change.objects.filter(entity="task", object_id=task.pk).order_by("-seq").first()
    assert (change.actor_kind, change.actor_label) == ("operator", "operator")
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "again"})
    assert answer.status_code == 409 and "is already failed" in answer.json()["detail"]


def test_marking_failed_needs_a_reason_the_permission_and_the_csrf_token(staff_user, django_user_model, running):
    task, _ = running
    before = Task.objects.get(pk=task.pk).version
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post(f"/tasks/{task.pk}/fail", {"reason": "x"}).status_code == 403  # no CSRF token
    operator = Client()
    operator.force_login(staff_user)
    answer = operator.post(f"/tasks/{task.pk}/fail", {"reason": "  "})
    assert answer.status_code == 400 and "Say why" in answer.json()["detail"]
    assert operator.get(f"/tasks/{task.pk}/fail").status_code == 405
    assert operator.post("/tasks/999999/fail", {"reason": "x"}).status_code == 404
    for client in (Client(), user_with(django_user_model, "viewer", "view_task"),
                   user_with(django_user_model, "nonstaff", "view_task", "change_task", staff=False)):
        answer = client.post(f"/tasks/{task.pk}/fail", {"reason": "x"})
        assert answer.status_code == 403 and "permission to change tasks" in answer.json()["detail"]
    assert Task.objects.get(pk=task.pk).version == before


def test_the_domain_closes_only_running_tasks(running):
    task, _ = running
    queued = Task.objects.create(title="waiting")
    with pytest.raises(domain.InvalidChange):
        domain.fail(task_id=queued.pk, reason="x")

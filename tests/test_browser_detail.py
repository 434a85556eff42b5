"""The task and agent pages and the throughput chart in a real Chromium against a real daphne.

Each test compares the page with the stored history (realtime.models.Change) and waits on
the page's state (`data-connection`, a `data-seq` element), never on a fixed sleep."""
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from realtime import actor
from realtime.models import Change
from tasks import liveness, tokens
from tasks.models import Agent, Task
from tests.browser_support import browser, context, server_env  # noqa: F401 (fixtures)
from tests.test_browser import PolicyWatch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
LONG_ERROR = "Traceback (most recent call last):\n" + "".join(f"  frame {i}: something went wrong\n" for i in range(200))


class Page:
    """One page of a signed-in context, with its errors and CSP violations."""

    def __init__(self, context, server, path):
        self.policy = PolicyWatch(context)
        self.page = context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        response = self.page.goto(f"{server.http}{path}")
        assert response.ok, response.status

    def wait_open(self):
        self.page.wait_for_function("() => document.body.dataset.connection === 'open' && window.detail.store.last !== null")

    def seqs(self):
        """Every element with data-seq in the timeline, in document order (the contract)."""
        return self.page.eval_on_selector_all("#timeline [data-seq]", "items => items.map(li => Number(li.dataset.seq))")

    def wait_seq(self, seq, timeout=10_000):
        self.page.wait_for_function(
            "seq => document.querySelector(`#timeline [data-seq=\"${seq}\"]`) !== null", arg=seq, timeout=timeout,
        )

    def item_text(self, seq):
        return self.page.text_content(f'#timeline [data-seq="{seq}"]')

    def shape(self):
        """The timeline as a tree of elements (tag, attributes, own text), whitespace and the
        arrival flash left out: what a reload must render the same."""
        return self.page.evaluate(SHAPE)

    def check_clean(self):
        assert self.errors == [] and self.policy.violations == [], (self.errors, self.policy.violations)


SHAPE = """() => {
    const shape = (el) => [
        el.tagName.toLowerCase(),
        [...el.attributes].filter((a) => a.name !== "open")
            .map((a) => [a.name, a.name === "class" ? a.value.split(/\\s+/).filter((c) => c && c !== "is-new").join(" ") : a.value])
            .sort(),
        [...el.childNodes].map((n) => (n.nodeType === Node.TEXT_NODE ? n.textContent.replace(/\\s+/g, " ").trim() : n.nodeType === Node.ELEMENT_NODE ? shape(n) : ""))
            .filter((part) => part !== ""),
    ];
    return shape(document.getElementById("timeline"))[2];  // its items (its own data-after is the first render's)
}"""


def stored_seqs(entity, object_id, **filters):
    return list(Change.objects.filter(entity=entity, object_id=object_id, **filters).order_by("-seq").values_list("seq", flat=True))


def test_the_task_page_shows_every_field_and_a_live_timeline(daphne, context, staff_user, settings):
    agent = Agent.objects.create(name="bot-1", status="idle", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Render the report", description="Monthly numbers")
    Task.objects.filter(pk=task.pk).update(status="running", agent=agent)
    Task.objects.filter(pk=task.pk).update(progress=40)
    server = daphne()
    page = Page(context(server), server, f"/tasks/{task.pk}/")
    page.wait_open()

    # Rendered on the server: every stored change, newest first, one element each.
    assert page.seqs() == stored_seqs("task", task.pk)
    assert "Progress 0% → 40%" in page.item_text(page.seqs()[0])
    assert "Queued → Running on bot-1" in page.item_text(page.seqs()[1])
    fields = page.page.text_content("#fields")
    for text in ("Render the report", "Running", "40%", "bot-1", "Monthly numbers", "Running for", "Waited"):
        assert text in fields, text

    # Live: changes from an agent (through the API), an operator (the admin) and the system.
    bot = Client(HTTP_AUTHORIZATION=f"Bearer {tokens.issue(agent)[1]}")
    response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"progress": 70}, content_type="application/json")
    assert response.status_code == 200, response.content
    seq = Task.objects.get(pk=task.pk).version
    page.wait_seq(seq)
    assert page.seqs()[0] == seq, "newest first"
    assert "Progress 40% → 70%" in page.item_text(seq) and "by agent bot-1" in page.item_text(seq)
    assert page.page.get_attribute(f'#timeline li[data-seq="{seq}"] a', "href") == f"/agents/{agent.pk}/"

    admin = Client()
    admin.force_login(staff_user)
    form = {"title": "Render the report", "description": "Monthly numbers", "status": "failed", "progress": 70,
            "agent": agent.pk, "error": LONG_ERROR}
    assert admin.post(f"/admin/tasks/task/{task.pk}/change/", form).status_code == 302
    seq = Task.objects.get(pk=task.pk).version
    page.wait_seq(seq)
    assert "Running → Failed" in page.item_text(seq) and "by operator operator" in page.item_text(seq)
    page.page.wait_for_function("() => document.querySelector('#fields .badge').textContent === 'Failed'")
    assert len(LONG_ERROR) > settings.REALTIME_WIRE_TEXT_CHARS
    assert page.page.text_content(".error-text").strip() == LONG_ERROR.strip(), "the full error, not the wire's excerpt"

    # Several changes in a burst: one element each, none folded, in order.
    for title in ("first", "second", "third"):
        Task.objects.filter(pk=task.pk).update(title=title)
    page.wait_seq(Task.objects.get(pk=task.pk).version)
    assert page.seqs() == stored_seqs("task", task.pk)
    assert "Renamed “second” → “third”" in page.item_text(page.seqs()[0])

    # A reload shows the same timeline.
    live = page.seqs()
    page.page.reload()
    page.wait_open()
    assert page.seqs() == live

    # Deleted: the page says so and keeps the history, deletion on top.
    Task.objects.filter(pk=task.pk).delete()
    page.page.wait_for_selector("#deleted-banner:not([hidden])")
    deletion = stored_seqs("task", task.pk)[0]
    page.wait_seq(deletion)
    assert "Deleted" in page.item_text(deletion)
    page.check_clean()


def test_a_long_timeline_pages_older_changes(daphne, context):
    task = Task.objects.create(title="chatty")
    for n in range(1, 61):  # renames: one item each
        Task.objects.filter(pk=task.pk).update(title=f"chatty {n}")
    agent = Agent.objects.create(name="bot-3", status="busy", last_heartbeat=timezone.now())
    with actor.acting_as("agent", agent.pk, agent.name):
        Task.objects.filter(pk=task.pk).update(status="running", agent=agent)
        for value in range(5, 55, 5):  # ten reports: one folded line on top
            Task.objects.filter(pk=task.pk).update(progress=value)
    server = daphne()
    page = Page(context(server), server, f"/tasks/{task.pk}/")
    page.wait_open()
    stored = stored_seqs("task", task.pk)
    assert len(folded(page)) == 50 and folded(page)[0][2] == 10
    assert page.seqs() == stored[:59], "fifty items: the line's ten reports, the claim, 48 renames"
    page.page.click("#older")
    page.page.wait_for_function("n => document.querySelectorAll('#timeline [data-seq]').length === n", arg=len(stored))
    assert page.seqs() == stored, "each change once, none missing"
    assert page.page.is_hidden("#older")
    # A report now extends the line on top; the paged part stays as it is.
    with actor.acting_as("agent", agent.pk, agent.name):
        Task.objects.filter(pk=task.pk).update(progress=99)
    page.wait_seq(Task.objects.get(pk=task.pk).version)
    assert page.seqs() == stored_seqs("task", task.pk)
    assert folded(page)[0][2] == 11
    page.check_clean()


def folded(page):
    """[(newest seq, oldest seq, count, first line)] of the page's timeline items (a folded line
    is named by data-last-seq and data-first-seq; a change by its data-seq)."""
    return page.page.eval_on_selector_all("#timeline > li", """items => items.map(li => [
        Number(li.dataset.seq ?? li.dataset.lastSeq), Number(li.dataset.firstSeq ?? li.dataset.seq),
        Number(li.dataset.count || 1), li.querySelector('.change-line').textContent])""")


def test_progress_reports_fold_into_one_line_live_and_after_a_reload(daphne, context):
    """An agent reports through the API, one report after another: the page keeps one line for
    the run, extended live by each fetch, and one data-seq element per stored change inside it;
    a reload renders the same elements."""
    agent = Agent.objects.create(name="bot-2", status="idle", last_heartbeat=timezone.now())
    _, secret = tokens.issue(agent)
    task = Task.objects.create(title="Transcode the archive")
    server = daphne()
    bot = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bot.post("/api/agent/claim/").status_code == 200
    page = Page(context(server), server, f"/tasks/{task.pk}/")
    page.wait_open()
    assert page.seqs() == stored_seqs("task", task.pk)
    progress = [10, 20, 30, 40, 50, 60]
    for n, value in enumerate(progress):
        if n == 2:
            page.page.wait_for_function("() => document.querySelector('#timeline li[data-count]') !== null", timeout=15_000)
        response = bot.patch(f"/api/agent/tasks/{task.pk}/", {"progress": value}, content_type="application/json")
        assert response.status_code == 200, response.content
        page.wait_seq(Task.objects.get(pk=task.pk).version, timeout=15_000)
        # Live, after every fetch: one element per stored change, newest first, folded or not.
        assert page.seqs() == stored_seqs("task", task.pk)
    stored = stored_seqs("task", task.pk)
    live = folded(page)
    assert live[0] == [stored[0], stored[5], 6, "Progress 0% → 60%, 6 reports"]
    assert len(live) == 3 and "Queued → Running on bot-2" in live[1][3] and live[2][3].startswith("Created")
    assert page.page.eval_on_selector("#timeline > li.fold", "li => li.hasAttribute('data-seq')") is False
    assert page.page.eval_on_selector_all("#timeline > li.fold [data-seq]", "els => els.length") == 6
    assert "UTC" in page.item_text(stored[0]) and "50% → 60%" in page.item_text(stored[0])
    assert "UTC" in page.page.text_content("#timeline > li.fold .change-meta")
    shape = page.shape()
    page.page.reload()
    page.wait_open()
    assert folded(page) == live
    assert page.seqs() == stored
    assert page.shape() == shape, "the live page's elements are those a reload renders"
    page.check_clean()


def test_a_folded_line_opens_from_the_keyboard_and_lists_each_report(daphne, context):
    agent = Agent.objects.create(name="bot-5", status="busy", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Resize the images")
    with actor.acting_as("agent", agent.pk, agent.name):
        Task.objects.filter(pk=task.pk).update(status="running", agent=agent)
        for value in (15, 30, 45):
            Task.objects.filter(pk=task.pk).update(progress=value)
    server = daphne()
    page = Page(context(server), server, f"/tasks/{task.pk}/")
    page.wait_open()
    stored = stored_seqs("task", task.pk)
    summary = "#timeline > li.fold summary"
    assert page.page.text_content(summary).strip() == "Progress 0% → 45%, 3 reports"
    assert page.page.is_hidden(f'#timeline [data-seq="{stored[0]}"]'), "collapsed"
    # Tab reaches the summary (after the page's own controls), Enter opens it, Space closes it.
    for _ in range(20):
        page.page.keyboard.press("Tab")
        if page.page.evaluate("() => document.activeElement.tagName") == "SUMMARY":
            break
    assert page.page.evaluate("() => document.activeElement.textContent.trim()") == "Progress 0% → 45%, 3 reports"
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector(f'#timeline [data-seq="{stored[0]}"]', state="visible")
    assert page.page.eval_on_selector_all(
        "#timeline > li.fold .fold-list > li", "lis => lis.map(li => li.textContent.split(' · ')[1])"
    ) == ["30% → 45%", "15% → 30%", "0% → 15%"]
    # Another report while it is open: the line grows in place, open, with the focus kept.
    with actor.acting_as("agent", agent.pk, agent.name):
        Task.objects.filter(pk=task.pk).update(progress=60)
    seq = Task.objects.get(pk=task.pk).version
    page.wait_seq(seq)
    page.page.wait_for_selector(f'#timeline [data-seq="{seq}"]', state="visible")
    assert page.page.text_content(summary).strip() == "Progress 0% → 60%, 4 reports"
    assert page.page.evaluate("() => document.activeElement.textContent.trim()") == "Progress 0% → 60%, 4 reports"
    assert page.seqs() == stored_seqs("task", task.pk)
    page.page.keyboard.press(" ")
    page.page.wait_for_selector(f'#timeline [data-seq="{seq}"]', state="hidden")
    page.check_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_a_timeline_with_a_folded_line(daphne, context, scheme):
    from tests.test_browser_dashboard_ux import axe_violations, blocking

    agent = Agent.objects.create(name="bot-6", status="busy", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Back up the database")
    with actor.acting_as("agent", agent.pk, agent.name):
        Task.objects.filter(pk=task.pk).update(status="running", agent=agent)
        for value in (20, 40, 60, 80):
            Task.objects.filter(pk=task.pk).update(progress=value)
    server = daphne()
    page = Page(context(server, color_scheme=scheme), server, f"/tasks/{task.pk}/")
    page.wait_open()
    report = {"folded": axe_violations(page.page)}
    page.page.click("#timeline > li.fold summary")
    page.page.wait_for_selector("#timeline > li.fold details[open] [data-seq]", state="visible")
    report["opened"] = axe_violations(page.page)
    print(f"\naxe ({scheme}): " + "; ".join(f"{name}: {found or 'none'}" for name, found in report.items()))
    assert {name: blocking(found) for name, found in report.items()} == {name: {} for name in report}
    page.check_clean()


def test_the_agent_page_shows_its_tasks_and_its_online_history_live(daphne, context, settings):
    agent = Agent.objects.create(name="bot-7", status="busy", hostname="rack-3", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Crunch", status="running", agent=agent)
    done = Task.objects.create(title="Earlier job", status="succeeded", progress=100, agent=agent)
    server = daphne()
    page = Page(context(server), server, f"/agents/{agent.pk}/")
    page.wait_open()
    fields = page.page.text_content("#fields")
    for text in ("bot-7", "Busy", "rack-3", "Crunch", "Earlier job", "Last heard from"):
        assert text in fields, text
    assert page.page.get_attribute(f'#recent-tasks li[data-id="{done.pk}"] a', "href") == f"/tasks/{done.pk}/"
    assert page.seqs() == stored_seqs("agent", agent.pk, moved=True)

    # The sweep takes it offline: its online history says so, and who did it; its task is requeued.
    settings.AGENT_OFFLINE_AFTER = 1.0
    Agent.objects.filter(pk=agent.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=30))
    assert liveness.sweep()["offline"] == [agent.pk]
    seq = stored_seqs("agent", agent.pk, moved=True)[0]
    page.wait_seq(seq)
    assert "Went offline" in page.item_text(seq) and "by the liveness sweep" in page.item_text(seq)
    page.page.wait_for_function("() => document.querySelector('#fields .badge').textContent === 'Offline'")
    assert "Crunch" not in page.page.text_content("[data-field=current]")
    assert Task.objects.get(pk=task.pk).status == "queued"
    page.check_clean()


def test_the_dashboards_agent_names_open_the_agent_page(daphne, context):
    agent = Agent.objects.create(name="bot-9", status="idle", last_heartbeat=timezone.now())
    server = daphne()
    ctx = context(server)
    board = ctx.new_page()
    board.goto(f"{server.http}/")
    board.wait_for_function("() => window.dashboard && window.dashboard.model.hydrated")
    link = f'#agent-list li[data-id="{agent.pk}"] .agent-name'
    board.wait_for_function(f"() => document.querySelector('{link}').getAttribute('href') === '/agents/{agent.pk}/'")
    board.click(link)
    board.wait_for_url(f"{server.http}/agents/{agent.pk}/")
    board.wait_for_selector("h1.detail-title")
    assert board.text_content("h1.detail-title") == "bot-9"


def chart_state(page):
    return page.evaluate(
        "() => { const d = document.getElementById('throughput').dataset; return [d.succeeded, d.failed, d.queued]; }"
    )


def test_the_dashboard_chart_draws_the_stored_history_and_updates_live(daphne, context):
    tasks = Task.objects.bulk_create([Task(title=f"c{i}") for i in range(3)])
    Task.objects.filter(pk=tasks[0].pk).update(status="running")
    Task.objects.filter(pk=tasks[0].pk).update(status="succeeded", progress=100)
    server = daphne()
    ctx = context(server)
    policy = PolicyWatch(ctx)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.http}/")
    page.wait_for_function("() => document.getElementById('throughput').dataset.succeeded !== undefined")
    assert chart_state(page) == ["1", "0", "2"]
    assert page.eval_on_selector_all("#throughput rect.bar-succeeded", "r => r.length") == 1
    assert page.eval_on_selector("#throughput .queue-line", "p => p.getAttribute('d').startsWith('M')")

    # A failure and a claim: the chart follows within seconds, from the stream's nudge.
    Task.objects.filter(pk=tasks[1].pk).update(status="failed", error="boom")
    Task.objects.filter(pk=tasks[2].pk).update(status="running")
    page.wait_for_function(
        "() => { const d = document.getElementById('throughput').dataset; return d.failed === '1' && d.queued === '0'; }",
        timeout=15_000,
    )
    assert page.eval_on_selector_all("#throughput rect.bar-failed", "r => r.length") == 1
    # The bars drawn add up to the totals; the failure is in the current minute (the success
    # may be a minute older when the test straddles a minute boundary).
    drawn = page.eval_on_selector_all(
        "#throughput [data-part=bars] g",
        "gs => gs.reduce((t, g) => [t[0] + Number(g.dataset.succeeded || 0), t[1] + Number(g.dataset.failed || 0)], [0, 0])",
    )
    assert drawn == [1, 1]
    assert page.eval_on_selector("#throughput [data-part=bars] g:last-child", "g => g.dataset.failed") == "1"

    # A reload draws the same picture: it comes from the stored history, not from the page.
    page.reload()
    page.wait_for_function("() => document.getElementById('throughput').dataset.succeeded !== undefined")
    assert chart_state(page) == ["1", "1", "0"]
    assert errors == [] and policy.violations == [], (errors, policy.violations)


def simulate_hour(agents, now):
    """An hour of a small fleet's work, minute by minute: tasks arrive, are claimed, succeed or
    fail; each minute's changes are dated to that minute, as if they had happened then."""
    import random

    rng = random.Random(7)
    for minute in range(60, -1, -1):
        mark = Change.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        arrivals = 3 + int(3 * (1 + __import__("math").sin(minute / 9))) + rng.randint(0, 2)
        Task.objects.bulk_create([Task(title=f"Build #{minute}-{i}") for i in range(arrivals)])
        queued = list(Task.objects.filter(status="queued").order_by("created_at", "id").values_list("pk", flat=True))
        for pk, agent in zip(queued, agents):
            if not Task.objects.filter(agent=agent, status="running").exists():
                Task.objects.filter(pk=pk).update(status="running", agent=agent, progress=rng.randint(5, 60))
        for pk in Task.objects.filter(status="running").values_list("pk", flat=True):
            roll = rng.random()
            if roll < 0.75:
                Task.objects.filter(pk=pk).update(status="succeeded", progress=100)
            elif roll < 0.82:
                Task.objects.filter(pk=pk).update(status="failed", error="exit status 137 (out of memory)")
        Change.objects.filter(seq__gt=mark).update(at=now - timedelta(minutes=minute, seconds=rng.randint(0, 50)))


def test_screenshots_of_the_task_page_and_the_chart(daphne, context):
    now = timezone.now()
    agents = [Agent.objects.create(name=f"runner-{i}", status="idle", last_heartbeat=now) for i in range(6)]
    simulate_hour(agents, now)
    with actor.acting_as("operator", 1, "maria"):
        task = Task.objects.create(title="Nightly integration suite", description="pytest -n 8 tests/integration")
    edit = Task.objects.filter(pk=task.pk).update
    with actor.acting_as("agent", agents[0].pk, agents[0].name):
        edit(status="running", agent=agents[0])
        for progress in (20, 45, 70):
            edit(progress=progress)
        edit(status="failed", error="exit status 137 (out of memory)")
    with actor.acting_as("operator", 1, "maria"):
        edit(status="queued", agent=None, progress=0, error="")
    with actor.acting_as("agent", agents[1].pk, agents[1].name):
        edit(status="running", agent=agents[1])
        edit(progress=35)
    server = daphne(REALTIME_HEARTBEAT_INTERVAL=25)

    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    detail = Page(context(server), server, f"/tasks/{task.pk}/")
    detail.wait_open()
    detail.page.screenshot(path=str(ROOT / "docs" / "img" / "task-detail.png"), full_page=True)
    detail.check_clean()

    board = context(server, viewport={"width": 1280, "height": 900}).new_page()
    board.goto(f"{server.http}/")
    board.wait_for_function("() => window.dashboard && window.dashboard.model.hydrated")
    board.wait_for_function("() => Number(document.getElementById('throughput').dataset.succeeded) > 100")
    board.locator("#throughput").screenshot(path=str(ROOT / "docs" / "img" / "throughput-chart.png"))
    for name in ("task-detail.png", "throughput-chart.png"):
        assert (ROOT / "docs" / "img" / name).stat().st_size > 10_000

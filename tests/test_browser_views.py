"""The dashboard holds a view of the tasks, never the table, in a real Chromium against daphne:
a search over 200,000 tasks answered by the server, "Show more" and the older rows, the bytes
the page receives, stale rows, the time back to live after restarts, and links that stay in
the app.

Every wait is on the page's state (`data-connection`, `data-stale`, `window.dashboard`) and
has a deadline; measured times are printed, never asserted."""
import json
import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from realtime import counts, registry, sequencing
from realtime.epochs import rotate_epoch
from tasks.models import Agent, Task
from tasks.rows import task_row
from tests.browser_support import Dashboard, browser, context, server_env  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
NEEDLE = "Rotate the quasar certificates"
STATUSES = ["queued", "succeeded", "failed", "cancelled"]


# Seeding a large table -------------------------------------------------------------------------


def seed_tasks(n, needle_at=None):
    """`n` tasks written with plain SQL (seconds, not minutes, for 200,000), then the stream told:
    a new epoch (rows written without sequencing) and the counts recounted. Every fourth is
    queued, the rest finished; the task at index `needle_at` is titled NEEDLE. Returns its id."""
    fields = [f for f in Task._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    folded = next((f for f in fields if f.name == "title_folded"), None)

    def values(i):
        status = STATUSES[i % 4]
        title = NEEDLE if i == needle_at else f"Job {i:06d} {WORDS[i % len(WORDS)]}"
        created = now - timedelta(seconds=n - i)
        row = {
            "version": 0, "updated_at": created, "title": title, "description": "", "status": status,
            "progress": 0 if status == "queued" else 100, "agent": None, "error": "exit 1" if status == "failed" else "",
            "created_at": created, "started_at": None if status == "queued" else created,
            "finished_at": None if status == "queued" else created,
        }
        if folded is not None:
            from tasks.search import fold

            row["title_folded"] = fold(title)
        return [f.get_db_prep_save(row[f.name] if f.name in row else f.get_default(), connection) for f in fields]

    table = connection.ops.quote_name(Task._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, n, 20_000):
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", [values(i) for i in range(start, min(n, start + 20_000))])
    rotate_epoch("the test wrote rows with plain SQL")
    counts.forget()
    sequencing.recount(registry.windowed())
    print(f"\nseeded {n:,} tasks in {time.monotonic() - started:.1f} s")
    return Task.objects.get(title=NEEDLE).pk if needle_at is not None else None


# A page whose WebSocket bytes are counted ------------------------------------------------------


class CountedDashboard(Dashboard):
    """A dashboard page whose WebSocket frames are counted by Chromium itself (CDP
    Network.webSocketFrameReceived), from before the page loads."""

    def before_load(self, context):
        self.received = {"frames": 0, "bytes": 0, "largest": 0}
        cdp = context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", self._frame)

    def _frame(self, event):
        size = len(event["response"]["payloadData"].encode())
        self.received["frames"] += 1
        self.received["bytes"] += size
        self.received["largest"] = max(self.received["largest"], size)

    def wait_view(self, timeout=30_000):
        """The view asked for is the one the page holds (its sync is in and drawn)."""
        self.page.wait_for_function(
            "() => window.dashboard && !window.dashboard.connection.status.viewPending"
            " && window.dashboard.model.view !== null && window.dashboard.store.view === window.dashboard.model.view",
            timeout=timeout,
        )


def fetch_json(page, url):
    return page.evaluate(
        "async url => { const r = await fetch(url, {headers: {Accept: 'application/json'}}); return [r.status, await r.json()]; }",
        url,
    )


def window_of(tasks, limit=200):
    return dict(tasks.order_by("-id").values_list("id", "version")[:limit])


# 1 ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_search_finds_one_task_among_200000_and_the_page_never_receives_the_table(daphne, context):
    n = 200_000
    needle = seed_tasks(n, needle_at=n // 3)
    sample = [len(json.dumps(task_row(t), separators=(",", ":"))) for t in Task.objects.order_by("?")[:200]]
    table_bytes = int(statistics.mean(sample) * n)
    server = daphne()
    ctx = context(server)
    board = CountedDashboard(ctx, server)
    page = board.page
    board.wait_open(timeout=60_000)
    board.wait_view()
    assert page.evaluate("window.dashboard.store.tasks.size") == 200
    assert board.store_versions()[0] == window_of(Task.objects.all())
    assert page.text_content('[data-count="total"]') == "200,000"
    assert page.text_content('[data-count="failed"]') == f"{n // 4:,}"
    assert page.text_content("#task-footer") == "The 200 newest of 200,000 tasks"
    first_sync = dict(board.received)

    # The search is the server's, over the whole table: one task, far below the window.
    assert needle not in window_of(Task.objects.all())
    page.fill("#search", "quasar")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'quasar'")
    board.wait_view()
    page.wait_for_function("() => window.dashboard.model.view.q === 'quasar'")
    assert board.rendered_task_ids() == [needle]
    assert board.row_text(needle, ".task-link") == NEEDLE
    assert page.text_content("#task-footer") == "1 matching task, newest first"
    assert page.is_hidden("#show-more")
    # By id, too; and the same link renders the same view on the server before any frame.
    page.fill("#search", f"#{needle}")
    page.keyboard.press("Enter")
    page.wait_for_function("id => window.dashboard.model.view.q === `#${id}`", arg=needle)
    assert board.rendered_task_ids() == [needle]
    direct = ctx.new_page()
    response = direct.goto(f"{server.http}/?q=quasar")
    html = response.text()
    assert html.count('<tr class="task"') == 1 and NEEDLE in html
    direct.close()

    # "Show more" grows the live window by 200 up to 1000; past that, older rows on request.
    page.click("#clear-filters")
    page.wait_for_function("() => location.search === ''")
    board.wait_view()
    page.wait_for_function("() => window.dashboard.model.view.q === null")
    for limit in (400, 600, 800, 1000):
        page.click("#show-more")
        page.wait_for_function("n => window.dashboard.store.tasks.size === n && window.dashboard.model.order.length === n", arg=limit)
        assert page.evaluate("location.search") == f"?limit={limit}"
    assert page.is_hidden("#show-more")
    assert board.store_versions()[0] == window_of(Task.objects.all(), 1000)
    bottom = page.evaluate("window.dashboard.model.order.at(-1)")
    page.click("#load-older")
    page.wait_for_selector("#older:not([hidden]) #older-rows tr.task")
    older = page.eval_on_selector_all("#older-rows tr.task", "rows => rows.map(r => [Number(r.dataset.id), r.dataset.live])")
    assert [row_id for row_id, _ in older] == list(Task.objects.filter(pk__lt=bottom).order_by("-id").values_list("id", flat=True)[:200])
    assert {live for _, live in older} == {"false"}
    assert page.text_content("#older-h") == "Older tasks Not live"
    assert "do not update" in page.text_content("#older-note")
    assert page.is_hidden("#load-older"), "the older list has its own button"
    page.click("#older-more")
    page.wait_for_function("() => document.querySelectorAll('#older-rows tr.task').length === 400")
    assert page.query_selector_all("#older-rows .row-select, #older-rows .row-action") == []

    # The JSON view behind it: keyset on id, the view's filters, field errors for bad input.
    status, body = fetch_json(page, f"/tasks/older/?before={needle + 1}&q=quasar&limit=5")
    assert status == 200 and [t["id"] for t in body["tasks"]] == [needle] and body["more"] is False
    # The 1,000th task's id, not 1000: ids do not restart at 1 after another test's rows.
    thousandth = Task.objects.order_by("id").values_list("id", flat=True)[999]
    status, body = fetch_json(page, f"/tasks/older/?before={thousandth}&status=failed&limit=3")
    assert [t["id"] for t in body["tasks"]] == list(Task.objects.filter(pk__lt=thousandth, status="failed").order_by("-id").values_list("id", flat=True)[:3])
    assert body["more"] is True and {t["status"] for t in body["tasks"]} == {"failed"}
    status, body = fetch_json(page, "/tasks/older/?before=x&status=bogus&limit=5000")
    assert status == 400
    assert set(body["errors"]) == {"before", "status"}, body
    status, body = fetch_json(page, "/tasks/older/?before=10&limit=0")
    assert status == 400 and set(body["errors"]) == {"limit"}, body

    # What the page received over its WebSocket, all of the above included.
    got = board.received
    print(f"\nthe table: {n:,} tasks, ~{table_bytes / 1e6:.1f} MB as wire rows (mean row {statistics.mean(sample):.0f} B)")
    print(f"first sync and ranges until live: {first_sync['bytes'] / 1e3:.1f} kB in {first_sync['frames']} frames")
    print(f"whole test (a search, an id, four Show more, older rows): {got['bytes'] / 1e3:.1f} kB in {got['frames']} frames, "
          f"largest {got['largest'] / 1e3:.1f} kB; {100 * got['bytes'] / table_bytes:.2f}% of the table")
    assert got["bytes"] < table_bytes * 0.05
    assert first_sync["bytes"] < table_bytes * 0.005
    assert board.errors == []


# 2 ---------------------------------------------------------------------------------------------


def small_fleet():
    now = timezone.now()
    atlas = Agent.objects.create(name="atlas", status="busy", last_heartbeat=now)
    borealis = Agent.objects.create(name="borealis", status="idle", last_heartbeat=now)
    tasks = [Task.objects.create(title=f"Job {i:02d}", status=s, agent=atlas if s != "queued" else None, progress=40 if s == "running" else 0)
             for i, s in enumerate(["queued", "running", "failed", "succeeded", "cancelled", "queued"])]
    return atlas, borealis, tasks


STALE = "() => ['task-table', 'agent-list'].map(id => document.getElementById(id).dataset.stale ?? null)"


def open_dashboard(daphne, context):
    """A daphne server and a signed-in dashboard on it, open: (server, board)."""
    server = daphne()
    board = Dashboard(context(server), server)
    board.wait_open()
    return server, board


def test_the_page_marks_and_disables_stale_rows_within_a_second_and_clears_the_mark_when_live(daphne, context):
    atlas, _, tasks = small_fleet()
    server, board = open_dashboard(daphne, context)
    page = board.page
    assert page.evaluate(STALE) == [None, None]
    assert page.is_enabled(f'tr.task[data-id="{tasks[0].pk}"] .row-select')
    live_colour = page.eval_on_selector(f'tr.task[data-id="{tasks[0].pk}"] .task-link', "a => getComputedStyle(a).color")

    # The server goes away: within a second the rows and agents say they are stale.
    started = time.monotonic()
    server.kill()
    page.wait_for_function(f"() => ({STALE})().every(v => v === 'true')", timeout=5_000)
    marked = time.monotonic() - started
    assert page.evaluate("document.body.dataset.connection") != "open"
    row = f'tr.task[data-id="{tasks[0].pk}"]'
    assert page.is_disabled(f"{row} .row-select") and page.is_disabled(f"{row} .row-action")
    assert page.is_disabled("#select-all")
    assert page.eval_on_selector(f"{row} .task-link", "a => getComputedStyle(a).color") != live_colour, "dimmed"
    # A selection made before stays, but its actions are off while stale.
    # "Updated" gives the time of the last data applied, and it ages.
    page.wait_for_function("() => /^Updated [1-9]\\d* s ago$/.test(document.getElementById('updated-ago').textContent)", timeout=10_000)

    # Back: the mark clears and the actions come back.
    daphne(port=server.port)
    board.wait_open(timeout=30_000)
    page.wait_for_function(f"() => ({STALE})().every(v => v === null)")
    cleared = time.monotonic() - started
    assert page.is_enabled(f"{row} .row-select") and page.is_enabled(f"{row} .row-action")

    # Offline in the browser: stale at once, live again when online.
    board.page.context.set_offline(True)
    page.wait_for_function(f"() => ({STALE})().every(v => v === 'true')", timeout=5_000)
    assert page.text_content("#conn-text").startswith("Offline")
    board.page.context.set_offline(False)
    board.wait_open()
    page.wait_for_function(f"() => ({STALE})().every(v => v === null)")
    print(f"\nstale mark {marked * 1000:.0f} ms after the server died; cleared {cleared:.1f} s after (restart included)")
    assert board.errors == []


# 3 ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_twenty_restarts_and_the_time_back_to_live(daphne, context):
    small_fleet()
    server, board = open_dashboard(daphne, context)
    after_ready, after_stop = [], []
    for i in range(20):
        calm = i % 2 == 0  # SIGTERM: the server closes its sockets with 1012; else it dies
        stopped = time.monotonic()
        if calm:
            server.stop()
        else:
            server.kill()
        board.wait_state("waiting", "connecting", "offline", timeout=10_000)
        server = daphne(port=server.port)  # returns once the port answers
        ready = time.monotonic()
        board.wait_open(timeout=60_000)
        live = time.monotonic()
        after_ready.append(live - ready)
        after_stop.append(live - stopped)
    def p95(values):
        return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]
    print(f"\n20 restarts (10 with a 1012 close, 10 killed): back to live after the server listened: "
          f"median {statistics.median(after_ready):.2f} s, p95 {p95(after_ready):.2f} s, max {max(after_ready):.2f} s; "
          f"after it stopped (its restart included): median {statistics.median(after_stop):.2f} s, p95 {p95(after_stop):.2f} s")
    print("each back-to-live time after listening, in order: " + ", ".join(f"{t:.2f}" for t in after_ready))
    assert board.errors == []


# 4 ---------------------------------------------------------------------------------------------


def test_the_links_stay_in_the_app_and_the_agent_filter_is_the_servers(daphne, context):
    atlas, borealis, tasks = small_fleet()
    server, board = open_dashboard(daphne, context)
    page = board.page
    running = tasks[1]
    # Live changes for the feed: a task of the view, an agent.
    Task.objects.filter(pk=tasks[0].pk).update(status="running", agent=borealis)
    Agent.objects.filter(pk=borealis.pk).update(status="busy")
    page.wait_for_function("() => document.querySelectorAll('#feed a.feed-text').length >= 2")

    assert board.row_text(running.pk, ".task-id") == f"#{running.pk}"
    assert page.get_attribute(f'tr.task[data-id="{running.pk}"] .agent-link', "href") == f"/agents/{atlas.pk}/"
    assert page.get_attribute(f'tr.task[data-id="{running.pk}"] .task-link', "href") == f"/tasks/{running.pk}/"
    assert page.get_attribute(f'li.agent[data-id="{atlas.pk}"] .agent-name', "href") == f"/agents/{atlas.pk}/"
    assert page.get_attribute(f'li.agent[data-id="{atlas.pk}"] .agent-task a', "href") == f"/tasks/{running.pk}/"
    feed = page.eval_on_selector_all("#feed a.feed-text", "links => links.map(a => a.getAttribute('href'))")
    assert f"/agents/{borealis.pk}/" in feed and f"/tasks/{tasks[0].pk}/" in feed
    admin = page.eval_on_selector_all("a[href^='/admin']", "links => links.map(a => a.closest('nav')?.getAttribute('aria-label'))")
    assert admin == ["Account"], "the only way into the admin is the top bar's link"

    # The agent filter is a view: the server answers, the URL keeps it, the counts stay whole.
    page.select_option("#agent-filter", str(atlas.pk))
    page.wait_for_function("id => new URLSearchParams(location.search).get('agent') === String(id)", arg=atlas.pk)
    page.wait_for_function("id => window.dashboard.model.view?.agent === id && !window.dashboard.connection.status.viewPending", arg=atlas.pk)
    mine = set(Task.objects.filter(agent=atlas).values_list("pk", flat=True))
    page.wait_for_function("n => window.dashboard.table.ids.length === n", arg=len(mine))
    assert set(board.rendered_task_ids()) == mine
    assert page.text_content('[data-count="total"]') == str(Task.objects.count())
    assert "agent atlas" in page.text_content("#feed-scope")
    page.reload()
    board.wait_open()
    assert page.eval_on_selector("#agent-filter", "s => s.value") == str(atlas.pk)
    assert set(board.rendered_task_ids()) == mine

    # Sorting sorts the rows shown; the header says so.
    page.click('thead .sort[data-sort="status"]')
    assert page.get_attribute('thead th:has(.sort[data-sort="status"])', "aria-sort") == "ascending"
    assert "sorts the rows shown" in page.text_content('thead .sort[data-sort="status"]')
    statuses = page.eval_on_selector_all("tr.task", "rows => rows.map(r => r.dataset.status)")
    order = ["queued", "running", "succeeded", "failed", "cancelled"]
    assert statuses == sorted(statuses, key=order.index)
    assert page.text_content("#task-footer").endswith("sorted by status within these")

    # Following an agent's link from the table opens its page, in the app.
    page.click(f'tr.task[data-id="{running.pk}"] .agent-link')
    page.wait_for_url(f"{server.http}/agents/{atlas.pk}/")
    assert board.errors == []


def test_a_phone_reaches_the_tasks_first_and_the_keyboard_skips_to_them(daphne, context):
    _, _, tasks = small_fleet()
    Task.objects.create(title="A long title that takes more than one line on a phone: rebuild the search index of every region", status="queued")
    server = daphne()
    phone = Dashboard(context(server, viewport={"width": 390, "height": 844}), server)
    page = phone.page
    phone.wait_open()
    top = page.eval_on_selector("#tasks", "el => el.getBoundingClientRect().top")
    print(f"\nphone: the task list starts {top:.0f} px down")
    assert top < 400
    assert page.is_visible(".jump a[href='#tasks']")
    title = page.eval_on_selector("tr.task .task-link", "a => [a.getClientRects().length, a.scrollHeight, parseFloat(getComputedStyle(a).lineHeight)]")
    assert title[1] > title[2] * 1.5, "the long title wraps to a second line"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    desk = Dashboard(context(server), server)
    desk.wait_open()
    desk.page.keyboard.press("Tab")
    assert desk.page.evaluate("document.activeElement.textContent") == "Skip to tasks"
    assert desk.page.is_visible(".skip-link")
    desk.page.keyboard.press("Enter")
    desk.page.keyboard.press("Tab")
    assert desk.page.evaluate("document.activeElement.id") == "search", "one Tab from the skip link to the search"
    assert phone.errors == [] and desk.errors == []

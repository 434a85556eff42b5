"""The dashboard in a real Chromium against real daphne processes.

Each test waits on the page's state (`data-connection`, `window.dashboard`) and compares
what the browser holds with the database; none sleeps to let something happen."""
import time
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from tasks.models import Agent, Task
from tests.browser_support import Dashboard, browser, context, server_env  # noqa: F401 (fixtures)
from tests.support.stream import database_versions

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
XSS = "<img src=x onerror=alert(1)>"


# 1 -------------------------------------------------------------------------------------------


def test_an_admin_edit_in_one_page_shows_in_the_dashboard_in_another(daphne, context):
    task = Task.objects.create(title="Original title", status="queued")
    server = daphne()
    ctx = context(server)
    board = Dashboard(ctx, server)
    board.wait_open()
    row = f'tr.task[data-id="{task.pk}"]'
    assert board.page.get_attribute(f"{row} .task-link", "href") == f"/tasks/{task.pk}/"
    board.page.eval_on_selector(row, "tr => { tr.keep = 'same element' }")

    admin = ctx.new_page()
    admin.goto(f"{server.http}/admin/tasks/task/{task.pk}/change/")
    admin.fill("#id_title", "Edited in the admin")
    admin.select_option("#id_status", "cancelled")
    admin.click("input[name=_save]")
    admin.wait_for_url(f"{server.http}/admin/tasks/task/")

    board.wait_row_text(task.pk, ".task-link", "Edited in the admin", timeout=5_000)
    assert board.row_text(task.pk, ".badge") == "Cancelled"
    assert board.page.eval_on_selector(row, "tr => tr.keep") == "same element", "the row was patched in place"
    assert board.page.text_content('[data-count="cancelled"]') == "1"
    assert "Queued → Cancelled" in board.page.text_content("#feed")

    # Pause holds everything behind a banner (the rows, the counts) and the pill says so; Show
    # applies the changes; the choice is remembered.
    board.page.click("#pause")
    assert board.page.text_content("#conn-text") == "Paused"
    assert board.state() == "open", "the link stays live underneath"
    Task.objects.filter(pk=task.pk).update(title="Changed while paused")
    Task.objects.create(title="Cancelled while paused", status="cancelled")
    board.page.wait_for_function("() => document.getElementById('held-text').textContent.includes('2 changes held')")
    assert board.page.text_content("#held-text").startswith("Paused: showing the data as of ")
    assert board.row_text(task.pk, ".task-link") == "Edited in the admin"
    assert board.page.text_content('[data-count="cancelled"]') == "1", "the counts hold still too"
    board.page.click("#show-held")
    board.wait_row_text(task.pk, ".task-link", "Changed while paused")
    assert board.page.text_content('[data-count="cancelled"]') == "2"
    assert board.page.text_content("#held-text").endswith("No change held yet; only the times still tick.")
    board.page.click("#pause")
    assert board.page.is_hidden("#held-banner")
    assert board.page.text_content("#conn-text") == "Live"
    board.page.click("#pause")
    board.page.reload()
    board.wait_open()
    assert board.page.get_attribute("#pause", "aria-pressed") == "true"
    assert board.page.text_content("#pause") == "Resume"
    board.page.click("#pause")
    assert board.errors == []


# 2 -------------------------------------------------------------------------------------------


def test_after_a_server_restart_the_page_converges_to_the_database(daphne, context):
    keep = Task.objects.create(title="Will be renamed")
    doomed = Task.objects.create(title="Will be deleted")
    agent = Agent.objects.create(name="atlas", status="idle", last_heartbeat=timezone.now())
    server = daphne()
    ctx = context(server)
    board = Dashboard(ctx, server)
    board.wait_open()

    # The browser loses the network: the pill says how old the data is; back online, live again.
    ctx.set_offline(True)
    board.wait_state("offline")
    assert board.page.text_content("#conn-text").startswith("Offline · data as of ")
    ctx.set_offline(False)
    board.wait_open()

    server.kill()
    board.wait_state("waiting", "connecting")
    board.page.wait_for_function("() => document.getElementById('conn-text').textContent.startsWith('Reconnecting')")

    keep.title, keep.status, keep.agent = "Renamed while the server was down", "running", agent
    keep.save()
    doomed.delete()
    created = Task.objects.create(title="Created while the server was down", status="queued")
    agent.status = "busy"
    agent.save()

    daphne(port=server.port)
    board.wait_converged(database_versions(), timeout=40_000)
    board.wait_state("open")
    assert board.store_versions() == database_versions()
    board.wait_row_text(keep.pk, ".task-link", "Renamed while the server was down")
    assert board.row_text(keep.pk, ".badge") == "Running"
    board.wait_row_text(created.pk, ".task-link", "Created while the server was down")
    assert doomed.pk not in board.rendered_task_ids()
    current = board.page.text_content(f'li.agent[data-id="{agent.pk}"] .agent-task')
    assert current.startswith("Renamed while the server was down"), current
    assert board.errors == []


# 3 -------------------------------------------------------------------------------------------


def test_a_signed_out_socket_stops_with_a_sign_in_link_and_never_retries(daphne, context):
    server = daphne()
    board = Dashboard(context(server), server)
    board.wait_open()
    Session.objects.all().delete()

    server.kill()
    board.wait_state("waiting", "connecting")
    daphne(port=server.port)
    board.wait_state("waiting", "stopped")
    # The person does not wait for the backoff. (Clicked in the page in one step: the backoff
    # may have fired meanwhile and hidden the button.)
    board.page.evaluate("() => { const b = document.getElementById('retry-now'); if (!b.hidden) b.click(); }")
    board.wait_state("stopped")
    assert board.page.text_content("#conn-text") == "Signed out"
    link = board.page.get_attribute("#sign-in", "href")
    assert link.startswith("/accounts/login/?next=")
    assert board.page.is_visible("#sign-in") and board.page.is_hidden("#retry-now")
    board.page.wait_for_function("() => document.getElementById('conn-status').textContent.startsWith('Signed out')")

    sockets = len(board.sockets)
    started = time.monotonic()
    board.page.wait_for_timeout(4_000)  # proving an absence needs a window of time
    assert time.monotonic() - started >= 4
    assert len(board.sockets) == sockets, board.sockets
    assert board.state() == "stopped"

    # The link leads back: sign in and the page is live again.
    board.page.click("#sign-in")
    board.page.fill("#id_username", "operator")
    board.page.fill("#id_password", "operator-pass-123")
    board.page.click("button[type=submit]")
    board.page.wait_for_url(f"{server.http}/")
    board.wait_open()


# 4 -------------------------------------------------------------------------------------------


def test_markup_in_titles_and_names_is_shown_as_text(daphne, context):
    agent = Agent.objects.create(name="<b>bold agent</b>", status="busy", last_heartbeat=timezone.now())
    task = Task.objects.create(title=XSS, status="running", agent=agent, progress=40)
    server = daphne()
    board = Dashboard(context(server), server)
    html = board.response.text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and XSS not in html
    board.wait_open()

    def no_markup():
        return board.page.evaluate(
            "() => document.querySelectorAll('#task-rows img, #agent-list img, #feed img, #agent-list b, script:not([type=module]):not([type=\"application/json\"]):not([src$=\"/theme-boot.js\"])').length"
        )

    assert board.row_text(task.pk, ".task-link") == XSS
    assert board.row_text(task.pk, ".agent-link") == "<b>bold agent</b>"
    assert board.page.text_content(f'li.agent[data-id="{agent.pk}"] .agent-task a') == XSS
    assert no_markup() == 0

    Task.objects.filter(pk=task.pk).update(title="<img src=y onerror=alert(2)>")
    fresh = Task.objects.create(title="<script>alert(3)</script>", status="queued")
    board.wait_row_text(task.pk, ".task-link", "<img src=y onerror=alert(2)>")
    board.wait_row_text(fresh.pk, ".task-link", "<script>alert(3)</script>")
    board.page.wait_for_function("() => document.getElementById('feed').textContent.includes('<script>alert(3)</script>')")
    assert no_markup() == 0
    assert board.dialogs == []
    assert board.errors == []


# 5 -------------------------------------------------------------------------------------------

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]


def big_fleet(n_agents=200, n_tasks=10_000):
    now = timezone.now()
    agents = Agent.objects.bulk_create(
        [Agent(name=f"worker-{i:03d}", status="offline" if i % 10 == 0 else "idle", last_heartbeat=now) for i in range(n_agents)]
    )
    tasks = []
    for i in range(n_tasks):
        status = STATUSES[i % 5]
        tasks.append(Task(
            title=f"Job {i:05d} {WORDS[i % len(WORDS)]}", status=status,
            progress=100 if status == "succeeded" else (i * 7) % 100,
            agent=None if status == "queued" else agents[i % n_agents],
            created_at=now - timezone.timedelta(seconds=n_tasks - i),
        ))
    Task.objects.bulk_create(tasks, batch_size=2000)


def window_of(tasks, limit=200):
    """{id: version} of the newest `limit` tasks of a queryset: what a view's window holds."""
    return dict(tasks.order_by("-id").values_list("id", "version")[:limit])


def test_ten_thousand_tasks_a_window_of_them_server_filters_and_a_burst_costs_few_renders(daphne, context):
    big_fleet()
    server = daphne()
    board = Dashboard(context(server), server)
    page = board.page
    board.wait_open(timeout=30_000)
    # The page holds a window of the newest 200, never the table; the counts are the server's.
    page.wait_for_function("n => window.dashboard.store.tasks.size === n", arg=200)
    assert board.store_versions()[0] == window_of(Task.objects.all())
    assert page.text_content('[data-count="total"]') == "10,000"
    assert page.text_content('[data-count="failed"]') == "2,000"
    assert page.text_content("#task-footer") == "The 200 newest of 10,000 tasks"
    first_render = page.evaluate("window.dashboard.lastRenderMs")
    rows = len(board.rendered_task_ids())
    assert 10 < rows < 200, rows
    newest = Task.objects.order_by("-id").values_list("id", flat=True)[0]
    assert board.rendered_task_ids()[0] == newest

    # "Show more" grows the window by 200 (kept in the URL); the rows in view stay where they are.
    assert page.text_content("#show-more") == "Show 200 more"
    page.click("#show-more")
    page.wait_for_function("() => window.dashboard.store.tasks.size === 400 && !window.dashboard.connection.status.viewPending")
    assert page.evaluate("location.search") == "?limit=400"
    assert page.evaluate("window.dashboard.table.ids.length") == 400
    assert board.rendered_task_ids()[0] == newest

    # Scrolling shows other rows, still only a few of them in the DOM.
    first_window = set(board.rendered_task_ids())
    page.eval_on_selector("#table-wrap", "el => { el.scrollTop = el.scrollHeight / 2 }")
    page.wait_for_function(
        "ids => ![...document.querySelectorAll('tr.task')].some(tr => ids.includes(Number(tr.dataset.id)))",
        arg=list(first_window),
    )
    middle = board.rendered_task_ids()
    assert len(middle) < 200
    order = page.evaluate("window.dashboard.model.order")
    assert middle == order[order.index(middle[0]):order.index(middle[0]) + len(middle)], "rows follow the order"

    # New tasks arrive above the rows in view: the rows on screen do not move.
    top_row = """() => {
        const wrap = document.getElementById('table-wrap').getBoundingClientRect();
        const hit = document.elementFromPoint(wrap.left + 120, wrap.top + 80);
        return Number(hit.closest('tr.task').dataset.id);
    }"""
    anchored = page.evaluate(top_row)
    newer = [Task.objects.create(title=f"Arrived while reading {i}") for i in range(3)]
    page.wait_for_function("ids => ids.every(id => window.dashboard.table.ids.includes(id))", arg=[t.pk for t in newer])
    assert page.evaluate(top_row) == anchored
    assert page.evaluate("window.dashboard.table.ids.indexOf(%d)" % anchored) == order.index(anchored) + 3

    # Filter by status (chip) and by text (search, focused with "/"): the server answers over
    # the whole table, and the window is the newest matching rows.
    page.click('.chip[data-status="failed"]')
    page.wait_for_function("() => location.search === '?status=failed'")
    page.wait_for_function("() => !window.dashboard.connection.status.viewPending && window.dashboard.model.view.status?.[0] === 'failed'")
    failed = Task.objects.filter(status="failed")
    assert board.store_versions()[0] == window_of(failed)
    assert set(page.eval_on_selector_all("tr.task", "rows => rows.map(r => r.dataset.status)")) == {"failed"}
    assert page.text_content("#task-footer") == "The 200 newest of 2,000 matching tasks"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type("bravo")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'bravo'")
    page.wait_for_function("() => !window.dashboard.connection.status.viewPending && window.dashboard.model.view.q === 'bravo'")
    matching = failed.filter(title__icontains="bravo")
    expected = matching.count()
    assert 0 < expected < 2000
    assert board.store_versions()[0] == window_of(matching)
    assert page.text_content("#task-footer") == (
        f"{expected:,} matching tasks, newest first" if expected <= 200 else f"The 200 newest of {expected:,} matching tasks")
    titles = page.eval_on_selector_all("tr.task .task-link", "links => links.map(a => a.textContent)")
    assert titles and all("bravo" in title for title in titles)
    page.keyboard.press("Escape")
    page.wait_for_function("() => location.search === '?status=failed'")
    page.click("#clear-filters")
    page.wait_for_function("() => location.search === ''")
    page.wait_for_function("() => !window.dashboard.connection.status.viewPending && window.dashboard.model.view.status === null")
    assert page.evaluate("window.dashboard.table.ids.length") == 200

    # A burst of 500 committed changes.
    renders, notes = page.evaluate("[window.dashboard.renders, window.dashboard.notifications]")
    with transaction.atomic():
        for task in Task.objects.filter(status="queued").order_by("id")[:500]:
            task.status, task.progress = "cancelled", 0
            task.save()
    cancelled = f"{Task.objects.filter(status='cancelled').count():,}"
    page.wait_for_function("n => document.querySelector('[data-count=cancelled]').textContent === n", arg=cancelled)
    board.page.wait_for_function("r => window.dashboard.renders > r", arg=renders)
    after, notes_after = page.evaluate("[window.dashboard.renders, window.dashboard.notifications]")
    timing = page.evaluate("window.dashboard.lastRenderMs")
    print(f"\n10,000 tasks: first render {first_render:.1f} ms; burst of 500 updates: {after - renders} render(s) "
          f"for {notes_after - notes} store change(s), {timing:.1f} ms; {len(board.rendered_task_ids())} rows in the DOM")
    assert after - renders <= 5
    assert board.store_versions()[0] == window_of(Task.objects.all())
    assert board.errors == []


def test_a_reset_over_one_mebibyte_reaches_the_page_on_default_daphne(daphne, context):
    Task.objects.bulk_create([Task(title=f"{i:05d} " + "long title " * 17) for i in range(3_000)])
    server = daphne()
    board = Dashboard(context(server), server)
    deadline = time.monotonic() + 15
    while board.state() != "open" and "reason=send failed" not in server.log():
        assert time.monotonic() < deadline, "the page neither synced nor did the server give up"
        board.page.wait_for_timeout(100)  # poll two states: the page's and the server log's
    assert board.state() == "open", server.log()[-600:]


# 6 -------------------------------------------------------------------------------------------


def settle(board):
    """Live, round trip measured, highlights faded."""
    board.wait_open()
    board.page.wait_for_function("() => window.dashboard.connection.status.rtt !== null")
    board.page.wait_for_function(
        "() => document.getAnimations().filter(a => String(a.animationName).startsWith('flash')).length === 0"
    )


def test_screenshots_of_the_demo_fleet(daphne, context):
    call_command("seed_demo", seed=7, stdout=open("/dev/null", "w"))
    server = daphne(REALTIME_HEARTBEAT_INTERVAL=25)  # agents count as stale after 2 x 25 s
    boards = []
    for options in ({}, {"viewport": {"width": 420, "height": 800}}, {"color_scheme": "dark"}):
        board = Dashboard(context(server, **options), server)
        board.wait_open()  # one at a time, so each round trip is measured on a quiet machine
        board.page.wait_for_function("() => window.dashboard.connection.status.rtt !== null")
        boards.append(board)
    desktop, narrow, dark = boards

    # A little live activity for the feed (which follows the tasks in view, and the agents).
    running = list(Task.objects.filter(status="running").order_by("id")[:3])
    running[0].status, running[0].progress = "succeeded", 100
    running[1].status, running[1].error = "failed", "exit status 137 (out of memory)"
    running[2].progress = min(99, running[2].progress + 20)
    for task in running:
        task.save()
    shown = Task.objects.filter(pk__in=window_of(Task.objects.all()))
    queued = list(shown.filter(status="queued").order_by("-id").values_list("pk", flat=True)[:2])
    Task.objects.filter(pk=queued[0]).update(status="running", agent=running[0].agent)
    Task.objects.filter(pk=queued[1]).update(status="cancelled")
    Task.objects.create(title="Deploy billing-api to production", status="queued")
    expected = (window_of(Task.objects.all()), database_versions()[1])
    for board in (desktop, narrow, dark):
        board.wait_converged(expected)
        board.page.wait_for_function("() => document.querySelectorAll('#feed .feed-item').length >= 3")
        settle(board)
        assert board.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scroll"
        assert board.errors == []

    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    desktop.page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
    assert len(narrow.rendered_task_ids()) < 60
    narrow.page.screenshot(path=str(ROOT / "docs" / "img" / "dashboard-narrow.png"))
    assert dark.page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(244, 245, 248)"
    dark.page.screenshot(path=str(ROOT / "docs" / "img" / "dashboard-dark.png"))
    for path in ("screenshot.png", "img/dashboard-narrow.png", "img/dashboard-dark.png"):
        assert (ROOT / "docs" / path).stat().st_size > 10_000


# 7 -------------------------------------------------------------------------------------------
# The Content-Security-Policy (django-csp) holds in a real browser: no page needs inline code.
# (Under it, Playwright's wait_for_function needs a function: a bare expression string is run
# with eval, which the policy refuses as it has no 'unsafe-eval'.)

REPORT_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', e => {
    window.cspViolations.push(e.violatedDirective);
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class PolicyWatch:
    """Every CSP violation any page of a context reports: the page's own event (logged by the
    init script) and Chromium's "Refused to ..." console messages."""

    def __init__(self, context):
        self.violations = []
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("console", self._console)

    def _console(self, message):
        text = message.text
        if "CSP violation" in text or "Content Security Policy" in text:
            self.violations.append(f"{message.page.url if message.page else '?'}: {text}")


def open_checked(page, url):
    """Load `url`, assert it carries the strict policy, and return the response."""
    response = page.goto(url)
    assert response.ok, (url, response.status)
    policy = response.header_value("content-security-policy")
    assert policy and "script-src 'self'" in policy and "unsafe-inline" not in policy, (url, policy)
    page.wait_for_load_state("load")
    return response


def test_no_page_breaks_the_content_security_policy(daphne, context, browser, staff_user):
    agent = Agent.objects.create(name="atlas", status="busy", last_heartbeat=timezone.now())
    task = Task.objects.create(title="Build billing-api on main", status="running", agent=agent, progress=42)
    server = daphne()

    # The sign-in page, signed out, and signing in through its form.
    anonymous = browser.new_context()
    watch_out = PolicyWatch(anonymous)
    page = anonymous.new_page()
    open_checked(page, f"{server.http}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.http}/")
    open_checked(page, f"{server.http}/admin/login/")  # signed in: the admin's login page redirects
    anonymous.close()
    assert watch_out.violations == []

    ctx = context(server)
    watch = PolicyWatch(ctx)
    board = Dashboard(ctx, server)
    assert "connect-src 'self'" in board.response.header_value("content-security-policy")
    board.wait_open()  # the WebSocket (ws: to the same host and port) is allowed by 'self'
    assert board.sockets == [server.ws]
    board.wait_row_text(task.pk, ".task-link", "Build billing-api on main")
    assert board.errors == []

    admin = ctx.new_page()
    open_checked(admin, f"{server.http}/admin/")
    open_checked(admin, f"{server.http}/admin/tasks/task/")
    assert admin.eval_on_selector(
        f'tr:has(a[href$="/{task.pk}/change/"]) .dash-badge', "el => getComputedStyle(el).backgroundColor"
    ) == "rgb(37, 99, 235)", "the badge colour comes from dashboard-admin.css"
    assert admin.eval_on_selector("progress.dash-progress", "el => getComputedStyle(el).width") == "90px"
    admin.check("#action-toggle")  # the admin's own scripts run: select all, then the action menu
    assert admin.is_checked(f'input[name=_selected_action][value="{task.pk}"]')
    open_checked(admin, f"{server.http}/admin/tasks/agent/")
    open_checked(admin, f"{server.http}/admin/tasks/agenttoken/add/")
    open_checked(admin, f"{server.http}/admin/axes/accessattempt/")
    open_checked(admin, f"{server.http}/admin/auth/user/")
    open_checked(admin, f"{server.http}/admin/auth/user/{staff_user.pk}/change/")
    open_checked(admin, f"{server.http}/admin/tasks/task/{task.pk}/delete/")

    # A change form and its "add another agent" popup, which answers through popup_response.js.
    open_checked(admin, f"{server.http}/admin/tasks/task/{task.pk}/change/")
    with admin.expect_popup() as opened:
        admin.click("#add_id_agent")
    popup = opened.value
    popup.wait_for_load_state("load")
    popup.fill("#id_name", "borealis")
    popup.click("input[name=_save]")
    admin.wait_for_function("() => document.querySelector('#id_agent option:checked').textContent === 'borealis'")
    assert Agent.objects.filter(name="borealis").exists()
    admin.fill("#id_title", "Edited under the policy")
    admin.click("input[name=_save]")
    admin.wait_for_url(f"{server.http}/admin/tasks/task/")
    board.wait_row_text(task.pk, ".task-link", "Edited under the policy")

    # The API's Swagger page: Swagger UI from /static/, its start-up script from /api/docs/?script.
    docs = ctx.new_page()
    open_checked(docs, f"{server.http}/api/docs/")
    assert watch.violations == []

    # The watch does see a violation when there is one.
    admin.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }")
    admin.wait_for_function("() => window.cspViolations.includes('script-src-elem')")
    assert admin.evaluate("window.ran") is None
    admin.wait_for_function("() => true")  # one more round trip: the console event has arrived
    assert any("script-src-elem" in v for v in watch.violations), watch.violations
    assert board.errors == []


def test_repeated_wrong_passwords_in_the_admin_login_form_lock_the_address(daphne, browser, staff_user):
    server = daphne()
    ctx = browser.new_context()
    watch = PolicyWatch(ctx)
    page = ctx.new_page()
    page.goto(f"{server.http}/admin/login/?next=/admin/")
    for attempt in range(5):  # five user names from one address: the address is locked
        page.fill("#id_username", f"intruder{attempt}")
        page.fill("#id_password", "guess")
        with page.expect_navigation() as navigation:
            page.click("input[type=submit]")
        status = navigation.value.status
        if attempt < 4:
            assert status == 200 and page.is_visible(".errornote"), attempt
    assert status == 429
    assert page.title() == "Sign-in locked · Fleet dashboard"
    message = page.text_content("#lockout-message")
    assert message == ("Too many failed sign-ins for this account or address; try again in 15 minutes "
                       "or ask an administrator to unlock it.")
    assert page.eval_on_selector(".login-card", "el => getComputedStyle(el).display") != "inline", "styled"

    # The right password, even for another user, waits too; after an unlock it works.
    page.goto(f"{server.http}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pass-123")
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 429
    from axes.models import AccessAttempt

    assert AccessAttempt.objects.filter(ip_address="127.0.0.1").count() == 6
    call_command("axes_reset", stdout=open("/dev/null", "w"))
    page.goto(f"{server.http}/accounts/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.http}/")
    assert watch.violations == []
    ctx.close()

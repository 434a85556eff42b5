"""The dashboard for people who keep it open all day, in a real Chromium against daphne:
the keyboard, cancel and requeue with their confirmation and permissions, and axe-core's
accessibility checks in light and dark.

Every test waits on the page's state (`data-connection`, `window.dashboard`, a row's
attributes); none sleeps to let something happen."""
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from tasks.models import Agent, Task
from tests.browser_support import Dashboard, browser, context, server_env  # noqa: F401 (fixtures)
from tests.test_browser import PolicyWatch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

# axe-core impacts that fail a page; "moderate" and "minor" are reported, not failed.
BLOCKING = ("serious", "critical")


def session_for(user):
    """A session cookie ("sessionid=...") for `user`, valid for any process sharing the database."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def row(task_id):
    """The selector of a task's row."""
    return f'tr.task[data-id="{task_id}"]'


@pytest.fixture
def viewer(django_user_model):
    """A staff user who may only look: tasks.view_task and tasks.view_agent."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "viewer-pass-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_task", "view_agent"]))
    return user


def fleet():
    """A few agents and tasks in every status, enough for every control to be drawn."""
    now = timezone.now()
    atlas = Agent.objects.create(name="atlas", status="busy", last_heartbeat=now)
    Agent.objects.create(name="borealis", status="idle", last_heartbeat=now)
    Agent.objects.create(name="cirrus", status="offline", last_heartbeat=now - timezone.timedelta(hours=2))
    tasks = []
    for i, status in enumerate(["queued", "running", "succeeded", "failed", "cancelled"] * 3):
        tasks.append(Task.objects.create(
            title=f"Job {i:02d} {status}", status=status, progress=40 if status == "running" else 0,
            agent=atlas if status in ("running", "succeeded", "failed") else None,
            error="exit status 1" if status == "failed" else "",
        ))
    return tasks


# axe ----------------------------------------------------------------------------------------


def axe_violations(page):
    """axe-core's violations on `page`: {rule id: (impact, number of elements, the first targets)}."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return {
        v["id"]: (v["impact"], len(v["nodes"]), [" ".join(map(str, n["target"])) for n in v["nodes"][:4]])
        for v in results.response["violations"]
    }


def blocking(violations):
    return {rule: found for rule, found in violations.items() if found[0] in BLOCKING}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_sign_in_page_and_the_dashboard(daphne, context, session_cookie, scheme):
    tasks = fleet()
    server = daphne()
    report = {}

    anonymous = context(server, None, color_scheme=scheme)
    page = anonymous.new_page()
    page.goto(f"{server.http}/accounts/login/")
    report["login"] = axe_violations(page)
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".form-error")
    report["login with an error"] = axe_violations(page)
    for _ in range(4):  # the fifth failure from this address locks it (LOGIN_FAILURE_LIMIT)
        page.fill("#id_username", "nobody")
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
    page.wait_for_selector("#lockout-message")
    report["sign-in locked"] = axe_violations(page)

    ctx = context(server, session_cookie, color_scheme=scheme)
    board = Dashboard(ctx, server)
    board.wait_open()
    board.wait_row_text(tasks[-1].pk, ".task-link", tasks[-1].title)
    report["dashboard"] = axe_violations(board.page)

    # Live states: feed lines, a stale agent (silent for over twice the 2 s test heartbeat),
    # changes held behind the banner while paused.
    Task.objects.filter(pk=tasks[0].pk).update(status="running", progress=10)
    Agent.objects.filter(name="borealis").update(last_heartbeat=timezone.now() - timezone.timedelta(minutes=5))
    Task.objects.create(title="Arrived later", status="queued")
    board.page.wait_for_selector('li.agent[data-liveness="stale"]')
    board.page.wait_for_selector("#feed .feed-item")
    board.page.click("#pause")
    Task.objects.filter(pk=tasks[1].pk).update(progress=70)
    board.page.wait_for_function("() => /\\d+ changes? held/.test(document.getElementById('held-text').textContent)")
    report["dashboard, live and paused"] = axe_violations(board.page)
    board.page.click("#pause")

    # The keyboard's cursor row, a selection and the confirmation.
    board.page.keyboard.press("j")
    board.page.check(f'tr.task[data-id="{tasks[0].pk}"] .row-select')
    board.page.click('#bulk-bar [data-bulk="cancel"]')
    board.page.wait_for_selector("#confirm-dialog[open]")
    report["dashboard, confirmation open"] = axe_violations(board.page)
    board.page.keyboard.press("Escape")

    # A filter by agent and a sort; then the server goes away: the rows and agents are stale.
    atlas = Agent.objects.get(name="atlas")
    board.page.select_option("#agent-filter", str(atlas.pk))
    board.page.wait_for_function("id => window.dashboard.model.view?.agent === id", arg=atlas.pk)
    board.page.click('thead .sort[data-sort="progress"]')
    report["dashboard, filtered by agent and sorted"] = axe_violations(board.page)
    server.kill()
    board.page.wait_for_selector('#task-table[data-stale="true"]')
    report["dashboard, stale"] = axe_violations(board.page)

    print(f"\naxe ({scheme}): " + "; ".join(f"{name}: {found or 'none'}" for name, found in report.items()))
    assert {name: blocking(found) for name, found in report.items()} == {name: {} for name in report}
    assert board.errors == []



@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_a_task_page(daphne, context, session_cookie, scheme):
    tasks = fleet()
    server = daphne()
    page = context(server, session_cookie, color_scheme=scheme).new_page()
    page.goto(f"{server.http}/tasks/{tasks[3].pk}/")
    page.wait_for_function("() => document.body.dataset.connection === 'open'")
    page.wait_for_selector("[data-seq]")
    found = axe_violations(page)
    print(f"\naxe ({scheme}): task page: {found or 'none'}")
    assert blocking(found) == {}


# keyboard -----------------------------------------------------------------------------------

FOCUSED_ROW = "() => { const tr = document.activeElement.closest('tr.task'); return tr ? Number(tr.dataset.id) : null; }"
ROW_TOP = "id => document.querySelector(`tr.task[data-id=\"${id}\"]`).getBoundingClientRect().top"
IN_VIEW = """id => {
    const row = document.querySelector(`tr.task[data-id="${id}"]`).getBoundingClientRect();
    const wrap = document.getElementById('table-wrap').getBoundingClientRect();
    return row.top >= wrap.top && row.bottom <= wrap.bottom + 1;
}"""


def test_the_keyboard_moves_a_focus_that_survives_updates_and_scrolling(daphne, context, session_cookie):
    now = timezone.now()
    Task.objects.bulk_create([
        Task(title=f"Task {i:03d}", created_at=now - timezone.timedelta(seconds=300 - i)) for i in range(300)
    ])
    order = list(Task.objects.order_by("-id").values_list("id", flat=True)[:200])  # the window
    server = daphne()
    board = Dashboard(context(server, session_cookie), server)
    page = board.page
    board.wait_open()
    focused = lambda: page.evaluate(FOCUSED_ROW)  # noqa: E731

    # j/k and the arrows move between rows; the focused control shows its ring and the row is marked.
    page.keyboard.press("j")
    assert focused() == order[0]
    page.check(f"{row(order[0])} .row-select")  # from a checkbox, "/" still goes to the search
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.press("Escape")  # empty search: Esc leaves it
    page.keyboard.press("j")
    assert focused() == order[1], "j goes on from the cursor row"
    page.keyboard.press("k")
    page.uncheck(f"{row(order[0])} .row-select")
    for key in ("j", "j", "ArrowDown"):
        page.keyboard.press(key)
    assert focused() == order[3]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("k")
    assert focused() == order[1]
    assert page.evaluate("document.activeElement.matches('.task-link:focus-visible')")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    row_bg = page.eval_on_selector(f'tr.task[data-id="{order[1]}"] td.c-status', "td => getComputedStyle(td).backgroundColor")
    other_bg = page.eval_on_selector(f'tr.task[data-id="{order[2]}"] td.c-status', "td => getComputedStyle(td).backgroundColor")
    assert row_bg != other_bg, "the cursor row is marked"

    # Live updates: the focused row is patched in place, and new rows above it do not move it,
    # even at the top of the table.
    page.evaluate("id => { document.querySelector(`tr.task[data-id=\"${id}\"]`).keep = 'same' }", order[1])
    top = page.evaluate(ROW_TOP, order[1])
    Task.objects.filter(pk=order[1]).update(title="Renamed while focused")
    newer = [Task.objects.create(title=f"Newer {i}") for i in range(3)]
    page.wait_for_function("ids => ids.every(id => window.dashboard.table.ids.includes(id))", arg=[t.pk for t in newer])
    board.wait_row_text(order[1], ".task-link", "Renamed while focused")
    assert focused() == order[1]
    assert page.evaluate("id => document.querySelector(`tr.task[data-id=\"${id}\"]`).keep", order[1]) == "same"
    assert page.evaluate(ROW_TOP, order[1]) == top, "the focused row did not move"
    assert page.text_content("#new-above") == "↑ 3 new above", "said below the table"

    # Scrolling far away keeps the focused row (and its focus); the next j goes on from it.
    page.eval_on_selector("#table-wrap", "el => { el.scrollTop = el.scrollHeight * 0.7 }")
    page.wait_for_function("id => !window.dashboard.table.ids.slice(0, 40).some(i => i !== id && document.querySelector(`tr.task[data-id=\"${i}\"]`))", arg=order[1])
    assert focused() == order[1]
    assert page.evaluate("document.querySelectorAll('tr.task').length") < 80, "still a window of rows"
    page.keyboard.press("j")
    assert focused() == order[2]
    assert page.evaluate(IN_VIEW, order[2]), "the new cursor row is scrolled into view"
    page.keyboard.press("End")
    last = page.evaluate("window.dashboard.table.ids.at(-1)")  # three newer tasks pushed three out
    assert last == order[-4]
    assert focused() == last
    assert page.evaluate(IN_VIEW, last)
    page.keyboard.press("Home")
    ids = page.evaluate("window.dashboard.table.ids")
    assert focused() == ids[0]
    page.wait_for_selector("#new-above", state="hidden")  # back at the top, nothing is above

    # The focused row is deleted: the focus goes to the row that took its place.
    page.keyboard.press("j")
    gone = focused()
    Task.objects.filter(pk=gone).delete()
    page.wait_for_function("id => !window.dashboard.table.ids.includes(id)", arg=gone)
    page.wait_for_function("gone => { const tr = document.activeElement.closest('tr.task'); return tr && Number(tr.dataset.id) !== gone; }", arg=gone)
    assert focused() == ids[ids.index(gone) + 1]

    # Enter on the focused row opens its task's page.
    target = focused()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.http}/tasks/{target}/")
    assert board.errors == []


# actions -------------------------------------------------------------------------------------

# Every change of a row's status or pending action, in order, from the first parse on.
RECORD_ROWS = """
window.rowLog = [];
document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(records => {
        for (const r of records) {
            const tr = r.target;
            if (tr.matches && tr.matches('tr.task')) window.rowLog.push([Number(tr.dataset.id), tr.dataset.status, tr.dataset.pending || null]);
        }
    }).observe(document.getElementById('task-rows'), {attributes: true, subtree: true, attributeFilter: ['data-status', 'data-pending']});
});
"""


def test_a_view_only_user_sees_no_action_controls(daphne, context, viewer):
    tasks = fleet()
    server = daphne()
    board = Dashboard(context(server, session_for(viewer)), server)
    board.wait_open()
    board.wait_row_text(tasks[0].pk, ".task-link", tasks[0].title)
    page = board.page
    assert page.get_attribute("body", "data-can-change") == "0"
    for selector in (".row-select", ".row-action", "#bulk-bar", "#confirm-dialog", "#select-all", ".c-actions"):
        assert page.query_selector_all(selector) == [], selector
    assert page.eval_on_selector("tr.task", "tr => tr.cells.length") == 6  # id, title, status, progress, agent, updated
    page.keyboard.press("j")  # the keyboard works for them all the same
    assert page.evaluate(FOCUSED_ROW) == tasks[-1].pk
    assert board.errors == []


def test_an_operator_cancels_three_selected_tasks_and_the_rows_show_pending_then_cancelled(daphne, context, session_cookie):
    tasks = fleet()
    queued, running, succeeded = tasks[0], tasks[1], tasks[2]
    other_running = tasks[6]
    server = daphne()
    ctx = context(server, session_cookie)
    watch = PolicyWatch(ctx)
    ctx.add_init_script(RECORD_ROWS)
    board = Dashboard(ctx, server)
    page = board.page
    board.wait_open()
    chosen = [queued, running, tasks[5], other_running, succeeded]  # 4 cancellable, 1 not
    for task in chosen:
        page.check(f"{row(task.pk)} .row-select")
    assert page.text_content("#bulk-count") == "5 selected"

    page.click('#bulk-bar [data-bulk="cancel"]')
    dialog = "#confirm-dialog"
    page.wait_for_selector(f"{dialog}[open]")
    assert page.text_content("#confirm-title") == "Cancel 4 tasks?"
    text = page.text_content("#confirm-text")
    assert text == "4 tasks will be asked to cancel. 1 selected task cannot be cancelled (succeeded) and will be left as it is."
    assert page.eval_on_selector_all("#confirm-list li", "lis => lis.map(li => li.textContent)") == [t.title for t in chosen[:4]]

    # While it is open, one of the four finishes and a new task arrives: the dialog does not
    # change, and no row moves.
    top = page.evaluate(ROW_TOP, queued.pk)
    Task.objects.filter(pk=other_running.pk).update(status="succeeded", progress=100)
    fresh = Task.objects.create(title="Arrived during the dialog")
    page.wait_for_function("id => window.dashboard.table.ids.includes(id)", arg=fresh.pk)
    page.wait_for_selector(f'{row(other_running.pk)}[data-status="succeeded"]')
    assert page.text_content("#confirm-title") == "Cancel 4 tasks?"
    assert page.text_content("#confirm-text") == text
    assert page.evaluate(ROW_TOP, queued.pk) == top

    page.click("#confirm-go")
    cancelled = [queued, running, tasks[5]]
    page.wait_for_function(
        "ids => ids.every(id => { const tr = document.querySelector(`tr.task[data-id=\"${id}\"]`); "
        "return tr.dataset.status === 'cancelled' && !tr.dataset.pending; })",
        arg=[t.pk for t in cancelled],
    )
    result = "Cancelled 3 of 4 tasks. 1 task changed before it could be sent (now succeeded) and was left alone."
    page.wait_for_function("text => document.getElementById('action-result').textContent === text", arg=result)
    log = page.evaluate("window.rowLog")
    for task in cancelled:
        states = [(status, pending) for id_, status, pending in log if id_ == task.pk]
        assert (task.status, "cancel") in states, (task.pk, states)
        assert states.index((task.status, "cancel")) < states.index(("cancelled", None)), (task.pk, states)
        assert board.row_text(task.pk, ".badge") == "Cancelled"
    assert not any(pending for id_, _, pending in log if id_ in (other_running.pk, succeeded.pk))
    assert dict(Task.objects.filter(pk__in=[t.pk for t in chosen]).values_list("pk", "status")) == {
        queued.pk: "cancelled", running.pk: "cancelled", tasks[5].pk: "cancelled",
        other_running.pk: "succeeded", succeeded.pk: "succeeded",
    }
    assert page.text_content("#bulk-count") == "2 selected", "the tasks left alone stay selected"
    assert page.query_selector(f'#feed a.feed-text[href="/tasks/{queued.pk}/"]'), "the feed's line opens the task's page"

    # A row's own button asks too; Esc closes the confirmation and nothing is sent.
    failed = tasks[3]
    page.click(f"{row(failed.pk)} .row-action")
    page.wait_for_selector(f"{dialog}[open]")
    assert page.text_content("#confirm-title") == "Requeue 1 task?"
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('confirm-dialog').open")
    assert Task.objects.get(pk=failed.pk).status == "failed"
    assert page.evaluate("document.activeElement.matches('.row-action')"), "the focus is back on the button"
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{dialog}[open]")
    page.click("#confirm-go")
    board.wait_row_text(failed.pk, ".badge", "Queued")
    page.wait_for_function("text => document.getElementById('action-result').textContent === text", arg="Requeued 1 of 1 task.")
    assert Task.objects.get(pk=failed.pk).status == "queued"

    # Paused, the page shows a task still running that has finished meanwhile: the confirm
    # checks the newest row received, so it is reported, not sent.
    finished = tasks[11]
    page.click("#pause")
    Task.objects.filter(pk=finished.pk).update(status="succeeded", progress=100)
    page.wait_for_function("() => document.getElementById('held-text').textContent.includes('1 change held')")
    page.click(f"{row(finished.pk)} .row-action")
    assert page.text_content("#confirm-title") == "Cancel 1 task?"
    page.click("#confirm-go")
    page.wait_for_function(
        "text => document.getElementById('action-result').textContent === text",
        arg="Cancelled 0 of 1 task. 1 task changed before it could be sent (now succeeded) and was left alone.",
    )
    page.click("#pause")
    board.wait_row_text(finished.pk, ".badge", "Succeeded")
    assert watch.violations == []
    assert board.errors == []


def test_every_control_is_reached_with_tab(daphne, context, session_cookie):
    fleet()
    server = daphne()
    board = Dashboard(context(server, session_cookie), server)
    page = board.page
    board.wait_open()
    page.check(".row-select >> nth=0")  # the bulk buttons are enabled (a disabled one is skipped, rightly)
    names = page.evaluate("""() => [...document.querySelectorAll('a[href], button, input')]
        .filter(el => !el.disabled && el.offsetParent !== null && !el.closest('dialog'))
        .map((el, i) => { el.dataset.tabCheck = i; return el.id || el.className; })""")
    page.focus("body")
    reached = set()
    for _ in range(400):
        page.keyboard.press("Tab")
        index = page.evaluate("document.activeElement.dataset.tabCheck ?? null")
        if index is not None and int(index) in reached:
            break
        if index is not None:
            reached.add(int(index))
    missing = [name for i, name in enumerate(names) if i not in reached]
    assert missing == [], missing
    assert board.errors == []


# theme --------------------------------------------------------------------------------------

# The theme on <html> when <body> is parsed: only the classic scripts in <head> have run then,
# and the stylesheet (render-blocking) has not let anything paint yet.
RECORD_FIRST_THEME = """
new MutationObserver((records, observer) => {
    if (!document.body) return;
    window.themeAtBody = document.documentElement.dataset.theme || null;
    observer.disconnect();
}).observe(document, {childList: true, subtree: true});
"""
LIGHT_BG, DARK_BG = "rgb(244, 245, 248)", "rgb(13, 16, 22)"


def test_the_dark_mode_toggle_is_remembered_and_applied_before_the_first_paint(daphne, context, session_cookie):
    fleet()
    server = daphne()
    ctx = context(server, session_cookie, color_scheme="light")
    watch = PolicyWatch(ctx)
    ctx.add_init_script(RECORD_FIRST_THEME)
    board = Dashboard(ctx, server)
    page = board.page
    board.wait_open()
    background = lambda: page.evaluate("getComputedStyle(document.body).backgroundColor")  # noqa: E731
    assert background() == LIGHT_BG
    assert page.get_attribute("#theme-toggle", "aria-pressed") == "false"

    page.click("#theme-toggle")
    assert page.get_attribute("#theme-toggle", "aria-pressed") == "true"
    assert page.evaluate("localStorage.getItem('dashboard.theme')") == "dark"
    assert background() == DARK_BG
    dark_report = blocking(axe_violations(page))

    # Reloaded (and on the sign-in page), the choice is on <html> before <body> is parsed.
    page.reload()
    board.wait_open()
    assert page.evaluate("window.themeAtBody") == "dark"
    assert background() == DARK_BG
    other = ctx.new_page()
    other.goto(f"{server.http}/accounts/login/")
    assert other.evaluate("window.themeAtBody") == "dark"
    assert other.evaluate("getComputedStyle(document.body).backgroundColor") == DARK_BG
    other.close()

    # Back to light: the system's own theme, so the choice is forgotten and the system decides.
    page.click("#theme-toggle")
    assert page.evaluate("localStorage.getItem('dashboard.theme')") is None
    assert page.evaluate("document.documentElement.dataset.theme ?? null") is None
    assert background() == LIGHT_BG
    page.emulate_media(color_scheme="dark")
    page.wait_for_function("() => document.getElementById('theme-toggle').getAttribute('aria-pressed') === 'true'")
    assert background() == DARK_BG
    assert dark_report == {}
    assert watch.violations == []
    assert board.errors == []

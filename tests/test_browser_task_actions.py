"""Operators at work on a running task, in a real Chromium against a real daphne process while
the task's agent reports progress every 0.5 s through the API: the admin's status change and
title fix go through; the task page's cancel, requeue and "mark failed" work with their
confirmation and are absent for a user without the permission; axe-core finds nothing
serious on the task page in light and dark.

Waits are on state (the page's attributes, the database's rows), each with a deadline; no
assertion is timed."""
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from tasks import tokens
from tasks.models import Agent, Task
from tests.browser_support import browser, server_env  # noqa: F401 (fixtures)
from tests.test_browser import PolicyWatch
from tests.test_browser_dashboard_ux import axe_violations, blocking, context, session_for, viewer  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.django_db(transaction=True)]

DEADLINE = 20  # seconds any one wait may take


def wait_until(predicate, what, timeout=DEADLINE):
    """Poll `predicate` (a database read) until it holds; fail naming `what` after `timeout`."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def api(server, secret, method, path, body=None):
    """One agent API request; (HTTP status, JSON answer)."""
    request = urllib.request.Request(
        f"{server.http}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Reporter(threading.Thread):
    """An agent that reports progress on its task every `interval` s through the API until its
    report is refused (the task left it) or it is stopped."""

    def __init__(self, server, secret, task_id, interval=0.5):
        super().__init__(name="reporter", daemon=True)
        self.args = (server, secret, task_id)
        self.interval, self.stopping = interval, threading.Event()
        self.sent, self.refused, self.failure = 0, None, None

    def run(self):
        server, secret, task_id = self.args
        progress = 1
        try:
            while not self.stopping.is_set():
                status, answer = api(server, secret, "PATCH", f"/api/agent/tasks/{task_id}/", {"progress": progress})
                if status != 200:
                    self.refused = (status, answer)
                    return
                self.sent += 1
                progress = progress % 99 + 1
                self.stopping.wait(self.interval)
        except Exception as exc:  # reported by the test
            self.failure = exc

    def stop(self):
        self.stopping.set()
        self.join(DEADLINE)
        assert not self.is_alive(), "the reporter did not stop"
        assert self.failure is None, self.failure


@pytest.fixture
def claimed(daphne):
    """A daphne server and a task claimed through the API by agent bot-1, whose token is returned."""
    server = daphne()
    agent = Agent.objects.create(name="bot-1", last_heartbeat=timezone.now())
    _, secret = tokens.issue(agent)
    task = Task.objects.create(title="Render the monthly report", description="Numbers for March")
    status, answer = api(server, secret, "POST", "/api/agent/claim/")
    assert status == 200 and answer["id"] == task.pk, answer
    return server, agent, task, secret


@pytest.fixture
def reporting(claimed):
    server, agent, task, secret = claimed
    reporter = Reporter(server, secret, task.pk)
    reporter.start()
    yield server, agent, task, reporter
    reporter.stop()


def version(task):
    return Task.objects.get(pk=task.pk).version


# The admin, while the agent reports ----------------------------------------------------------


def admin_save(page, server, task, fill):
    """Open the task's change form, wait for two reports to land after it loaded, `fill` it, save."""
    page.goto(f"{server.http}/admin/tasks/task/{task.pk}/change/")
    loaded = int(page.get_attribute('input[name="loaded_version"]', "value"))
    wait_until(lambda: version(task) >= loaded + 2, "two progress reports after the form loaded")
    fill(page)
    page.click('input[name="_save"]')
    page.wait_for_load_state("load")
    errors = page.eval_on_selector_all(".errornote, .errorlist li", "els => els.map(e => e.textContent)")
    assert errors == [], errors
    page.wait_for_selector(".messagelist .success")
    return loaded


def test_the_admin_fixes_the_title_and_closes_a_task_whose_agent_reports_every_half_second(reporting, context, session_cookie):
    server, agent, task, reporter = reporting
    ctx = context(server, session_cookie)
    watch = PolicyWatch(ctx)
    page = ctx.new_page()

    loaded = admin_save(page, server, task, lambda p: p.fill("#id_title", "Render the March report"))
    stored = Task.objects.get(pk=task.pk)
    assert (stored.title, stored.status, stored.agent_id) == ("Render the March report", "running", agent.pk)
    assert stored.version > loaded + 2 and reporter.refused is None, "reports went on, and were kept"

    admin_save(page, server, task, lambda p: p.select_option("#id_status", "succeeded"))
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.progress, stored.title) == ("succeeded", 100, "Render the March report")
    assert Agent.objects.get(pk=agent.pk).status == "idle"
    wait_until(lambda: reporter.refused is not None, "the agent's next report is refused")
    assert reporter.refused[0] == 409, reporter.refused
    assert reporter.sent >= 4
    assert watch.violations == []


# The task page's actions -------------------------------------------------------------------------


class TaskPage:
    def __init__(self, ctx, server, task):
        self.page = ctx.new_page()
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        assert self.page.goto(f"{server.http}/tasks/{task.pk}/").ok
        self.page.wait_for_function("() => document.body.dataset.connection === 'open' && window.detail.store.last !== null")

    def buttons(self):
        """The actions shown, enabled ones only."""
        return self.page.eval_on_selector_all(
            "#task-actions button[data-action]", "bs => bs.filter(b => !b.hidden && !b.disabled).map(b => b.dataset.action)")

    def wait_buttons(self, *actions):
        self.page.wait_for_function(
            """want => JSON.stringify([...document.querySelectorAll('#task-actions button[data-action]')]
                .filter(b => !b.hidden && !b.disabled).map(b => b.dataset.action)) === JSON.stringify(want)""",
            arg=list(actions), timeout=DEADLINE * 1000)

    def confirm(self, action, title, button, reason=None, go=True):
        page = self.page
        page.click(f'#task-actions button[data-action="{action}"]')
        page.wait_for_selector("#confirm-dialog[open]")
        assert page.text_content("#confirm-title") == title
        assert page.eval_on_selector_all("#confirm-list li", "lis => lis.map(li => li.textContent)") == [self.title()]
        assert page.text_content("#confirm-go") == button
        assert page.is_visible("#fail-reason") == (reason is not None)
        if reason is not None:
            page.click("#confirm-go")  # no reason yet: the browser keeps the dialog open
            assert page.eval_on_selector("#fail-reason", "t => t.validity.valueMissing") is True
            assert page.is_visible("#confirm-dialog[open]")
            page.fill("#fail-reason", reason)
        page.click("#confirm-go" if go else "#confirm-back")
        page.wait_for_selector("#confirm-dialog", state="hidden")

    def title(self):
        return self.page.text_content("h1.detail-title")

    def wait_badge(self, text):
        self.page.wait_for_function("t => document.querySelector('#fields .badge').textContent === t", arg=text,
                                    timeout=DEADLINE * 1000)

    def top_item(self):
        return self.page.text_content("#timeline li[data-seq]")


def test_an_operator_marks_a_reporting_task_failed_then_requeues_and_cancels_it(reporting, context, session_cookie):
    server, agent, task, reporter = reporting
    ctx = context(server, session_cookie)
    watch = PolicyWatch(ctx)
    page = TaskPage(ctx, server, task)
    page.wait_buttons("cancel", "fail")

    # Go back: nothing is sent.
    page.confirm("fail", "Mark 1 task failed?", "Mark 1 task failed", reason="not sent", go=False)
    assert Task.objects.get(pk=task.pk).status == "running"

    reason = "The input bucket was deleted; re-upload March's files and requeue."
    page.confirm("fail", "Mark 1 task failed?", "Mark 1 task failed", reason=reason)
    page.wait_badge("Failed")
    page.page.wait_for_function("() => document.getElementById('action-result').textContent === 'Marked failed.'")
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.error) == ("failed", reason)
    page.page.wait_for_function(f"() => document.querySelector('#timeline li[data-seq]').dataset.seq === '{stored.version}'")
    assert "Running → Failed" in page.top_item() and "by operator operator" in page.top_item()
    assert reason in page.page.text_content(".error-text")
    wait_until(lambda: reporter.refused is not None, "the agent's next report is refused")
    assert reporter.refused[0] == 409
    page.wait_buttons("requeue")

    page.confirm("requeue", "Requeue 1 task?", "Requeue 1 task")
    page.wait_badge("Queued")
    stored = Task.objects.get(pk=task.pk)
    assert (stored.status, stored.agent_id, stored.progress, stored.error) == ("queued", None, 0, "")
    page.wait_buttons("cancel")

    page.confirm("cancel", "Cancel 1 task?", "Cancel 1 task")
    page.wait_badge("Cancelled")
    assert Task.objects.get(pk=task.pk).status == "cancelled"
    page.wait_buttons("requeue")
    assert page.errors == [] and watch.violations == [], (page.errors, watch.violations)


def test_a_task_that_changed_while_the_confirmation_was_open_is_left_alone(claimed, context, session_cookie):
    server, agent, task, secret = claimed
    page = TaskPage(context(server, session_cookie), server, task)
    page.wait_buttons("cancel", "fail")
    page.page.click('#task-actions button[data-action="cancel"]')
    page.page.wait_for_selector("#confirm-dialog[open]")
    status, _ = api(server, secret, "PATCH", f"/api/agent/tasks/{task.pk}/", {"status": "succeeded"})
    assert status == 200
    page.page.wait_for_function("() => window.detail.store.tasks.get(Number(document.body.dataset.id)).status === 'succeeded'",
                                timeout=DEADLINE * 1000)
    assert page.page.text_content("#confirm-title") == "Cancel 1 task?", "the dialog is not changed under the person"
    page.page.click("#confirm-go")
    page.page.wait_for_function(
        "() => document.getElementById('action-result').textContent.startsWith('The task changed before it could be sent (now succeeded)')")
    assert Task.objects.get(pk=task.pk).status == "succeeded"
    page.wait_buttons()
    assert page.errors == []


def test_a_viewer_gets_no_actions(claimed, context, viewer):
    server, _, task, _ = claimed
    page = TaskPage(context(server, session_for(viewer)), server, task)
    for selector in ("#task-actions", "#confirm-dialog", "button[data-action]"):
        assert page.page.query_selector_all(selector) == [], selector
    assert page.title() == task.title
    assert page.errors == []


# Accessibility -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_a_task_page_with_its_actions(reporting, context, session_cookie, scheme):
    server, agent, task, reporter = reporting
    wait_until(lambda: reporter.sent >= 3, "a few reports")
    page = TaskPage(context(server, session_cookie, color_scheme=scheme), server, task)
    page.wait_buttons("cancel", "fail")
    page.page.wait_for_selector("#timeline li[data-count]")  # a run of reports, folded
    report = {"task page": axe_violations(page.page)}
    page.page.click('#task-actions button[data-action="fail"]')
    page.page.wait_for_selector("#confirm-dialog[open]")
    report["mark failed, confirmation open"] = axe_violations(page.page)
    page.page.keyboard.press("Escape")
    page.page.wait_for_selector("#confirm-dialog", state="hidden")
    print(f"\naxe ({scheme}): " + "; ".join(f"{name}: {found or 'none'}" for name, found in report.items()))
    assert {name: blocking(found) for name, found in report.items()} == {name: {} for name in report}
    assert page.errors == []

"""Playwright helpers for the browser tests: one Chromium per module, a signed-in context per
test, and waits on the page's own state (`data-connection`, `window.dashboard`), never sleeps."""
import json
import logging
import os

import pytest

from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


# Playwright's sync API keeps an event loop running in this thread, and Django refuses ORM
# calls (the tests' and the fixtures') in a thread with a running loop. The flag lifts that for
# this process while the browser is up; `server_env` below keeps it out of every daphne, so
# the servers under test still get Django's check.
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (starting one costs about a second)."""
    require(os.path.exists(CHROMIUM), "Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ASYNC_UNSAFE, "true")
        # The test process's own publishes cannot run under Playwright's loop and have no
        # listener anyway: daphne finds the test's writes through the stream head.
        patch.setattr(logging.getLogger("realtime.publish"), "disabled", True)
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def server_env(server_env):
    """The daphne environment from conftest, without the test process's ORM flag."""
    env = dict(server_env)
    env.pop(ASYNC_UNSAFE, None)
    return env


def browser_context(browser, cookie, **options):
    """A browser context carrying the session `cookie` for the test servers (None: signed out)."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **options})
    if cookie is not None:
        name, value = cookie.split("=", 1)
        context.add_cookies([{"name": name, "value": value, "domain": "127.0.0.1", "path": "/"}])
    context.set_default_timeout(15_000)
    return context


STAFF = object()  # context()'s default cookie: the staff user's session


@pytest.fixture
def context(browser, request):
    """Factory: context(server, cookie, **options) is a browser context carrying the session
    `cookie` (by default the staff user's, `session_cookie`; None: signed out), closed after
    the test."""
    contexts = []

    def make(server, cookie=STAFF, **options):
        if cookie is STAFF:
            cookie = request.getfixturevalue("session_cookie")
        ctx = browser_context(browser, cookie, **options)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


class Dashboard:
    """A dashboard page plus what it did: its WebSockets, dialogs and page errors."""

    def __init__(self, context, server, path="/"):
        self.page = context.new_page()
        self.sockets, self.dialogs, self.errors = [], [], []
        self.before_load(context)
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.response = self.page.goto(f"{server.http}{path}")
        assert self.response.ok, self.response.status

    def before_load(self, context):
        """Called with the new page, before it loads: what a subclass watches from the start."""

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def wait_state(self, *states, timeout=15_000):
        self.page.wait_for_function(
            "states => states.includes(document.body.dataset.connection)", arg=list(states), timeout=timeout,
        )

    def wait_open(self, timeout=15_000):
        self.page.wait_for_function(
            "() => window.dashboard && document.body.dataset.connection === 'open' && window.dashboard.model.hydrated",
            timeout=timeout,
        )

    def state(self):
        return self.page.evaluate("document.body.dataset.connection")

    def store_versions(self):
        """({task id: version}, {agent id: version}) of the page's Store."""
        tasks, agents = self.page.evaluate(
            "() => [window.dashboard.store.tasks, window.dashboard.store.agents].map("
            "m => Object.fromEntries([...m].map(([id, row]) => [id, row.version])))"
        )
        return ({int(k): v for k, v in tasks.items()}, {int(k): v for k, v in agents.items()})

    def wait_converged(self, expected, timeout=30_000):
        """Wait until the Store holds exactly `expected` ({id: version} for tasks, agents)."""
        tasks, agents = expected
        self.page.wait_for_function(
            """([tasks, agents]) => {
                const same = (map, want) => map.size === Object.keys(want).length
                    && [...map].every(([id, row]) => want[id] === row.version);
                const s = window.dashboard && window.dashboard.store;
                return s && same(s.tasks, tasks) && same(s.agents, agents);
            }""",
            arg=[{str(k): v for k, v in tasks.items()}, {str(k): v for k, v in agents.items()}],
            timeout=timeout,
        )

    def row_text(self, task_id, selector):
        return self.page.eval_on_selector(f'tr.task[data-id="{task_id}"] {selector}', "el => el.textContent")

    def wait_row_text(self, task_id, selector, text, timeout=10_000):
        self.page.wait_for_function(
            """([id, selector, text]) => {
                const el = document.querySelector(`tr.task[data-id="${id}"] ${selector}`);
                return el !== null && el.textContent === text;
            }""",
            arg=[str(task_id), selector, text], timeout=timeout,
        )

    def rendered_task_ids(self):
        return self.page.eval_on_selector_all("tr.task", "rows => rows.map(r => Number(r.dataset.id))")


def dump(value):
    return json.dumps(value, indent=1, default=str)[:2000]

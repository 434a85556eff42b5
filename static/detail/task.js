// The task page (/tasks/<id>/): the stream's row of this task drives the timeline and, for
// an operator, which actions the page offers.
import { startDetailPage } from "./live.js";
import { taskVersion } from "./versions.js";
import { TaskPageActions } from "./actions-ui.js";

const id = Number(document.body.dataset.id);
const bar = document.getElementById("task-actions");
let actions = null;

const page = startDetailPage((store, timeline) => {
  const version = taskVersion(store, id, timeline);
  if (version !== null) timeline.want(version);
  actions?.draw();
}, { onStatus: () => actions?.draw() });

if (bar) {
  const known = { id, status: bar.dataset.status, version: Number(bar.dataset.version), title: bar.dataset.title };
  const csrf = () => bar.querySelector('input[name="csrfmiddlewaretoken"]')?.value ?? "";
  const rowOf = () => {
    if (page.timeline.deleted) return null;
    const row = page.store.tasks.get(id);
    if (row) Object.assign(known, { status: row.status, version: row.version, title: row.title });
    return known;
  };
  async function post(action, reason) {
    const fail = action === "fail";
    const response = await fetch(fail ? bar.dataset.failUrl : `${bar.dataset.apiTasks}${id}/${action}/`, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      body: fail ? new URLSearchParams({ reason }) : undefined,
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON (a proxy's error page): the status says enough
    }
    return { ok: response.ok, status: response.status, body };
  }
  actions = new TaskPageActions({
    bar, dialog: document.getElementById("confirm-dialog"), rowOf, post,
    live: () => document.body.dataset.connection === "open",
  });
  window.detail.actions = actions;
}

// The agents panel: one item per agent, sorted by name, keyed by id. Liveness (online,
// stale, offline) depends on the clock as well as the data, so the tick re-checks it.
import { count, liveness } from "./format.js";
import { createAgentItem, flash, patchAgentItem, setText, tickSeen } from "./render.js";

const AGENT_PAGE = "/agents/0/"; // tasks/pages.py agent_detail, as a pattern for adminUrl()

const byName = (agents) => (a, b) => String(agents.get(a).name).localeCompare(String(agents.get(b).name)) || (a > b ? 1 : a < b ? -1 : 0);

export class AgentPanel {
  /** @type {Map<unknown, HTMLLIElement>} */ items = new Map();

  /**
   * @param {object} els `list` (ul), `summary` (the online/stale/offline counts), `banner`
   *   (no agent online), `offlineCount` (in the "show offline" label)
   * @param {{taskUrl: string, agentUrl?: string}} urls page patterns with /0/ for the id:
   *   the task's page (an agent's running task links there) and the agent's page
   */
  constructor(els, urls) {
    this.els = els;
    // An agent's name opens its page (its tasks and online history); the admin is one link on.
    this.urls = { agentUrl: AGENT_PAGE, ...urls };
    this.order = [];
    for (const li of els.list.querySelectorAll("li.agent[data-id]")) {
      const id = Number(li.dataset.id);
      this.items.set(id, li);
      this.order.push(id);
    }
    this.emptyItem = els.list.querySelector("li.empty");
  }

  /**
   * Draw after a merge: patch the changed agents and those whose running task changed.
   * @param {import("./model.js").Model} model
   * @param {ReturnType<import("./model.js").Model["merge"]>} diff
   */
  render(model, diff, now, interval) {
    const changed = new Set(diff.agents.map((c) => c.id));
    const touched = new Set(changed);
    // Running tasks: beside the window with a view (`current`), among the tasks without one.
    for (const { before, after } of model.view ? diff.current ?? [] : diff.tasks) {
      if (before?.agent !== undefined && before.agent !== null) touched.add(before.agent);
      if (after?.agent !== undefined && after.agent !== null) touched.add(after.agent);
    }
    const membership = diff.first || diff.agents.some((c) => !c.before || !c.after || c.before.name !== c.after.name);
    if (membership) this.#reorder(model);
    const doc = this.els.list.ownerDocument;
    const ids = diff.first ? model.agents.keys() : touched;
    for (const id of ids) {
      const agent = model.agents.get(id);
      if (!agent) continue;
      let li = this.items.get(id);
      if (!li) this.items.set(id, (li = createAgentItem(doc)));
      this.#patch(li, agent, model, now, interval);
      if (!diff.first && changed.has(id)) flash(li);
    }
    if (membership) this.#place();
    this.#summarise(model, now, interval);
  }

  /** Every second: "seen 8 s ago", and liveness that the clock alone changed. */
  tick(model, now, interval) {
    for (const [id, li] of this.items) {
      const agent = model.agents.get(id);
      if (!agent) continue;
      if (li.dataset.liveness !== liveness(agent, now, interval)) this.#patch(li, agent, model, now, interval);
      else tickSeen(li.querySelector(".agent-seen"), now);
    }
    this.#summarise(model, now, interval);
  }

  /** @private */
  #patch(li, agent, model, now, interval) {
    patchAgentItem(li, agent, {
      ...this.urls, now, liveness: liveness(agent, now, interval), task: model.currentTask(agent.id),
    });
  }

  /** @private */
  #reorder(model) {
    this.order = [...model.agents.keys()].sort(byName(model.agents));
    const keep = new Set(this.order);
    for (const [id, li] of this.items) {
      if (!keep.has(id)) {
        li.remove();
        this.items.delete(id);
      }
    }
  }

  /** @private Put the items in name order, moving only those out of place. */
  #place() {
    const { list } = this.els;
    let cursor = list.firstElementChild;
    for (const id of this.order) {
      const li = this.items.get(id);
      if (!li) continue;
      if (li === cursor) cursor = cursor.nextElementSibling;
      else list.insertBefore(li, cursor);
    }
    if (this.order.length === 0) {
      if (!this.emptyItem) {
        this.emptyItem = list.ownerDocument.createElement("li");
        this.emptyItem.className = "empty";
        this.emptyItem.textContent = "No agents yet.";
      }
      list.append(this.emptyItem);
    } else {
      this.emptyItem?.remove();
    }
  }

  /** @private Counts by liveness, the "no agent online" banner, the hidden-offline count. */
  #summarise(model, now, interval) {
    const n = { online: 0, stale: 0, offline: 0 };
    for (const agent of model.agents.values()) n[liveness(agent, now, interval)] += 1;
    const { summary, banner, offlineCount } = this.els;
    for (const key of Object.keys(n)) {
      const span = summary.querySelector(`[data-agent-count="${key}"]`);
      if (span) setText(span, count(n[key]));
    }
    setText(offlineCount, n.offline ? `(${count(n.offline)})` : "");
    const none = n.online === 0;
    if (banner.hidden !== !none) banner.hidden = !none;
    if (none) {
      setText(banner, model.agents.size === 0
        ? "No agents have registered yet. Tasks wait in the queue until one does."
        : "No agent is online. Queued tasks will wait until one comes back.");
    }
  }
}

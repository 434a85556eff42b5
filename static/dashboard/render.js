// DOM for one task row and one agent item, keyed by id and patched in place. Every piece
// of text goes in through textContent; a property is written only when it differs, so an
// unchanged row costs a few comparisons and no layout.
import { ACTIONS, rowAction } from "./actions.js";
import { adminUrl, agentBadge, ago, isCut, parseTime, shownText, taskLabel, textWithHint } from "./format.js";

/** Set text only when it differs (no needless mutation, no flicker). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Set an attribute only when it differs; `null` removes it. */
function setAttr(el, name, value) {
  if (el.getAttribute(name) === value) return;
  if (value === null) el.removeAttribute(name);
  else el.setAttribute(name, value);
}

function setData(el, name, value) {
  if (el.dataset[name] !== value) el.dataset[name] = value;
}

/** Restart the highlight: two identical animations, alternated, restart without a reflow. */
export function flash(el) {
  el.dataset.flash = el.dataset.flash === "a" ? "b" : "a";
}

function el(doc, tag, className, ...children) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

// ---- tasks ----

/**
 * A task row with the same structure as the server-rendered one (templates/dashboard/index.html).
 * With `actions` (the user may change tasks) it has a selection checkbox and an action button.
 */
export function createTaskRow(doc, { actions = false } = {}) {
  const tr = el(doc, "tr", "task",
    el(doc, "td", "c-id", el(doc, "span", "task-id")),
    el(doc, "td", "c-title", el(doc, "a", "task-link")),
    el(doc, "td", "c-status", el(doc, "span", "badge")),
    el(doc, "td", "c-progress", progressBar(doc), el(doc, "span", "pct")),
    el(doc, "td", "c-agent", el(doc, "a", "agent-link"), el(doc, "span", "none")),
    el(doc, "td", "c-updated", el(doc, "span", "time")),
  );
  if (actions) {
    const box = el(doc, "input", "row-select");
    box.type = "checkbox";
    tr.prepend(el(doc, "td", "c-select", box));
    const button = el(doc, "button", "btn small row-action");
    button.type = "button";
    const pending = el(doc, "span", "row-pending");
    pending.hidden = true;
    tr.append(el(doc, "td", "c-actions", button, pending));
  }
  return tr;
}

function progressBar(doc) {
  const bar = doc.createElement("progress");
  bar.max = 100;
  return bar;
}

const taskRefs = new WeakMap();

function refsOf(tr) {
  let refs = taskRefs.get(tr);
  if (!refs) {
    const q = (s) => tr.querySelector(s);
    refs = {
      id: q(".task-id"), link: q(".task-link"), badge: q(".badge"), bar: q("progress"), pct: q(".pct"),
      agent: q(".agent-link"), none: q(".none"), time: q(".time"),
      select: q(".row-select"), action: q(".row-action"), pending: q(".row-pending"),
    };
    taskRefs.set(tr, refs);
  }
  return refs;
}

/**
 * Bring a task row up to date with `row`.
 * @param {object} ctx `taskUrl`, `agentUrl` (patterns with /0/ for the id: the task's and
 *   the agent's pages), `agentName(id)`, `now`; for rows with actions, `selected(id)`,
 *   `pending(id)` (the action on its way, or null) and `disabled` (the rows are stale)
 */
export function patchTaskRow(tr, row, ctx) {
  const r = refsOf(tr);
  const id = String(row.id);
  setData(tr, "id", id);
  setData(tr, "status", row.status);
  if (r.id) setText(r.id, `#${id}`);
  setText(r.link, shownText(row, "title"));
  setAttr(r.link, "href", adminUrl(ctx.taskUrl, row.id));
  setAttr(r.link, "title", textWithHint(row, "title"));
  setAttr(r.link, "data-truncated", isCut(row, "title") ? "title" : null);
  setAttr(r.badge, "class", `badge status-${row.status}`);
  setText(r.badge, taskLabel(row.status));
  setAttr(r.badge, "title", row.error ? `${taskLabel(row.status)}: ${textWithHint(row, "error")}` : null);
  const progress = Math.max(0, Math.min(100, Number(row.progress) || 0));
  if (r.bar.value !== progress) r.bar.value = progress;
  setText(r.pct, `${progress}%`);
  const hasAgent = row.agent !== null && row.agent !== undefined;
  r.agent.hidden = !hasAgent;
  r.none.hidden = hasAgent;
  setText(r.none, "—");
  if (hasAgent) {
    setText(r.agent, ctx.agentName(row.agent));
    setAttr(r.agent, "href", adminUrl(ctx.agentUrl, row.agent));
  }
  setData(r.time, "time", row.updated_at ?? "");
  setAttr(r.time, "title", row.updated_at ?? "");
  setText(r.time, ago(parseTime(row.updated_at), ctx.now));
  if (r.select) patchRowActions(r, row, ctx);
}

/** The checkbox, the action button and, while an action is on its way, what it is doing. */
function patchRowActions(r, row, ctx) {
  const title = shownText(row, "title");
  const selected = Boolean(ctx.selected?.(row.id));
  const disabled = Boolean(ctx.disabled);
  if (r.select.checked !== selected) r.select.checked = selected;
  if (r.select.disabled !== disabled) r.select.disabled = disabled;
  if (r.action.disabled !== disabled) r.action.disabled = disabled;
  setAttr(r.select, "aria-label", `Select ${title}`);
  const pending = ctx.pending?.(row.id) ?? null;
  const action = pending ? null : rowAction(row.status);
  r.action.hidden = action === null;
  if (action) {
    setText(r.action, ACTIONS[action].label);
    setAttr(r.action, "data-action", action);
    setAttr(r.action, "aria-label", `${ACTIONS[action].label} ${title}`);
  }
  r.pending.hidden = pending === null;
  setText(r.pending, pending ? ACTIONS[pending].doing : "");
  setAttr(r.pending.closest("tr"), "data-pending", pending);
}

/** Tick: "updated 3 s ago" of a row already drawn. */
export function tickTime(span, now) {
  setText(span, ago(parseTime(span.dataset.time), now));
}

// ---- agents ----

/** An agent item with the same structure as the server-rendered one. */
export function createAgentItem(doc) {
  return el(doc, "li", "agent",
    el(doc, "div", "agent-line",
      el(doc, "a", "agent-name"),
      el(doc, "span", "badge"),
    ),
    el(doc, "div", "agent-line agent-sub",
      el(doc, "span", "agent-task"),
      el(doc, "span", "agent-seen"),
    ),
  );
}

const agentRefs = new WeakMap();

function agentRefsOf(li) {
  let refs = agentRefs.get(li);
  if (!refs) {
    const q = (s) => li.querySelector(s);
    refs = { name: q(".agent-name"), badge: q(".badge"), task: q(".agent-task"), seen: q(".agent-seen") };
    agentRefs.set(li, refs);
  }
  return refs;
}

/**
 * Bring an agent item up to date.
 * @param {object} ctx `agentUrl`, `taskUrl` (the agent's and the task's pages, patterns),
 *   `now`, `liveness` (computed), `task` (its running task row or null)
 */
export function patchAgentItem(li, agent, ctx) {
  const r = agentRefsOf(li);
  setData(li, "id", String(agent.id));
  setData(li, "status", agent.status);
  setData(li, "liveness", ctx.liveness);
  setText(r.name, String(agent.name ?? ""));
  setAttr(r.name, "href", adminUrl(ctx.agentUrl, agent.id));
  const badgeState = ctx.liveness === "online" ? agent.status : ctx.liveness;
  setAttr(r.badge, "class", `badge status-${badgeState}`);
  setText(r.badge, agentBadge(agent, ctx.liveness));
  patchAgentTask(r.task, ctx.task, ctx.taskUrl);
  setData(r.seen, "time", agent.last_heartbeat ?? "");
  tickSeen(r.seen, ctx.now);
}

function patchAgentTask(span, task, taskUrl) {
  const key = task ? `${task.id}:${task.version}` : "";
  if (span.dataset.key === key) return;
  span.dataset.key = key;
  if (!task) {
    span.classList.add("idle");
    span.replaceChildren("No task");
    return;
  }
  span.classList.remove("idle");
  const doc = span.ownerDocument;
  const link = doc.createElement("a");
  link.href = adminUrl(taskUrl, task.id);
  link.textContent = shownText(task, "title");
  link.title = textWithHint(task, "title");
  const pct = doc.createElement("span");
  pct.className = "agent-pct";
  pct.textContent = `${Math.max(0, Math.min(100, Number(task.progress) || 0))}%`;
  span.replaceChildren(link, pct);
}

/** Tick: "last seen 8 s ago". */
export function tickSeen(span, now) {
  const seen = parseTime(span.dataset.time);
  setText(span, seen === null ? "never seen" : `seen ${ago(seen, now)}`);
}

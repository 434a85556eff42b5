// Wiring: the Connection feeds the Store; each store change asks for one render (per frame,
// or per 250 ms in a burst); a render merges the changes into the page's Model and patches
// the counts, the windowed task table, the agents and the feed. Outside a render, only the
// controls' own handlers (filters, pause, the connection badge, the keyboard cursor, the
// action controls) touch the page.
import { Connection } from "../realtime/connection.js";
import { Store } from "../realtime/store.js";
import { TaskActions } from "./actions-ui.js";
import { AgentPanel } from "./agents.js";
import { Badge } from "./badge.js";
import { RowCursor } from "./cursor.js";
import { Feed, feedLines } from "./feed.js";
import { filtersToSearch, isFiltered, parseFilters, taskMatcher } from "./filters.js";
import { TASK_STATUS, adminUrl, ago, count } from "./format.js";
import { targetKind } from "./keys.js";
import { Model, Pending } from "./model.js";
import { createTaskRow, flash, patchTaskRow, setText, tickSeen, tickTime } from "./render.js";
import { FrameScheduler } from "./schedule.js";
import { ThemeToggle } from "./theme.js";
import { VirtualTable } from "./virtual.js";

const $ = (id) => document.getElementById(id);
const urls = { task: document.body.dataset.adminTask, agent: document.body.dataset.adminAgent };
const loginUrl = document.body.dataset.login;
const taskPage = document.body.dataset.taskPage; // /tasks/0/: the row's title opens it
const canChange = document.body.dataset.canChange === "1";

// ---- preferences (remembered; localStorage may be unavailable) ----
function storage() {
  try {
    return localStorage;
  } catch {
    return null; // a blocked storage throws on access; callers catch the null's TypeError
  }
}
const prefs = {
  get(key, fallback) {
    try {
      return localStorage.getItem(`dashboard.${key}`) ?? fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(`dashboard.${key}`, value);
    } catch {
      // private mode or storage full: the preference lasts for this page only
    }
  },
};

// ---- state ----
const store = new Store();
const model = new Model();
const pending = new Pending();
const stats = { renders: 0, notifications: 0, lastRenderMs: null };
let filters = parseFilters(location.search);
let paused = prefs.get("paused", "0") === "1";
let status = null;
const agentName = (id) => model.agents.get(id)?.name ?? `#${id}`;
let matches = taskMatcher(filters, agentName);
const rowContext = { taskUrl: taskPage, agentUrl: urls.agent, agentName, now: Date.now() };

// ---- panels ----
const table = new VirtualTable({
  scroller: $("table-wrap"),
  tbody: $("task-rows"),
  columns: canChange ? 7 : 5,
  createRow: () => createTaskRow(document, { actions: canChange }),
  patchRow(tr, id, changed) {
    if (tr.hidden) tr.hidden = false; // a server row hidden by a filter before the first sync
    patchTaskRow(tr, model.tasks.get(id), rowContext);
    if (changed) flash(tr);
  },
  emptyText: () => (isFiltered(filters) ? "No tasks match these filters." : "No tasks yet."),
});

// ---- cancel and requeue (only drawn for users who may change tasks) ----
const csrfToken = () => document.querySelector('input[name="csrfmiddlewaretoken"]')?.value ?? "";
async function postAction(id, action) {
  const response = await fetch(`${document.body.dataset.apiTasks}${encodeURIComponent(id)}/${action}/`, {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  return { ok: response.ok, status: response.status, body };
}
const actions = canChange ? new TaskActions({
  tbody: $("task-rows"), bar: $("bulk-bar"), dialog: $("confirm-dialog"), selectAll: $("select-all"),
  rowOf: (id) => model.tasks.get(id), liveRowOf: (id) => store.tasks.get(id), shown: () => table.ids, post: postAction,
  redraw() {
    if (!model.hydrated) return;
    rowContext.now = Date.now();
    table.render();
  },
}) : null;
if (actions) Object.assign(rowContext, { selected: actions.selected, pending: (id) => actions.pending.get(id) });

/** Is the person busy with the rows? Then nothing moves, even at the top of the table. */
const interacting = () => $("task-rows").contains(document.activeElement) || (actions !== null && (actions.selection.size > 0 || actions.busy));
const agents = new AgentPanel(
  { list: $("agent-list"), summary: $("agent-summary"), banner: $("no-agents-banner"), offlineCount: $("offline-count") },
  { taskUrl: urls.task, agentUrl: urls.agent },
);
// A task's line opens the task's page (its timeline); an agent's, the agent in the admin.
const feed = new Feed($("feed"), { href: (entity, id) => adminUrl(entity === "task" ? taskPage : urls[entity], id) });
/** The pill's line for the server's words on a close (the page template has no slot for it). */
function connDetail() {
  const span = document.createElement("span");
  span.id = "conn-detail";
  span.className = "conn-detail";
  span.hidden = true;
  $("conn-text").after(span);
  return span;
}
const badge = new Badge({
  root: $("conn"), text: $("conn-text"), rtt: $("conn-rtt"), retry: $("retry-now"), signIn: $("sign-in"),
  reload: $("reload"), status: $("conn-status"), body: document.body, detail: $("conn-detail") ?? connDetail(),
});

// ---- rendering ----
const interval = () => status?.interval ?? 25000;

/**
 * The ids the table shows: every task, newest first, narrowed by the filters. On a live
 * update (`busy`), a row the person holds (the focused, the selected, one with an action on
 * its way) stays listed even when it no longer matches, so it does not vanish under them.
 */
function visibleIds({ busy = false } = {}) {
  if (!isFiltered(filters)) return model.order;
  const held = (id) => busy && (id === cursor.id || actions?.selection.has(id) || actions?.pending.get(id));
  return model.order.filter((id) => matches(model.tasks.get(id)) || held(id));
}

function renderData() {
  if (store.last === null) return; // nothing synced yet: the server-rendered rows stay
  if (paused && model.hydrated) return showHeld();
  const started = performance.now();
  const hadFocus = cursor.focused;
  const diff = model.merge(store, pending.take());
  stats.renders += 1;
  const now = Date.now();
  rowContext.now = now;
  const renamed = diff.agents.some((c) => c.before && c.after && c.before.name !== c.after.name);
  if (diff.first || diff.reordered || (isFiltered(filters) && (diff.tasks.length > 0 || renamed))) {
    table.setIds(visibleIds({ busy: true }), { hold: interacting() });
  }
  actions?.settle();
  const changed = diff.first ? undefined : new Set(diff.tasks.filter((c) => c.after).map((c) => c.id));
  table.render(changed);
  cursor.keep(hadFocus);
  agents.render(model, diff, now, interval());
  renderCounts();
  if (!diff.first) feed.add(feedLines(diff, agentName), now);
  showHeld();
  stats.lastRenderMs = performance.now() - started;
}

function renderCounts() {
  for (const key of Object.keys(TASK_STATUS)) setText(document.querySelector(`[data-count="${key}"]`), count(model.counts[key]));
  setText(document.querySelector('[data-count="total"]'), count(model.tasks.size));
  const total = model.tasks.size;
  setText($("task-footer"), isFiltered(filters)
    ? `${count(table.ids.length)} of ${count(total)} tasks match`
    : `${count(total)} tasks, newest first`);
  showNewAbove();
}

// Rows that came in above a view held still: said below the table (nothing above it moves).
function showNewAbove() {
  const n = table.newAbove;
  $("new-above").hidden = n === 0;
  if (n) setText($("new-above"), `↑ ${count(n)} new above`);
}
$("new-above").addEventListener("click", () => {
  table.toTop();
  rowContext.now = Date.now();
  table.render();
  showNewAbove();
});

const scheduler = new FrameScheduler(renderData);
store.subscribe(() => {
  stats.notifications += 1;
  pending.absorb(store.drain());
  scheduler.request();
});

// Scrolling draws the window from the page's snapshot: one draw per frame, none counted
// as a data render.
let scrollFrame = false;
function drawWindow() {
  if (scrollFrame || !model.hydrated) return; // before the first sync the server's rows stay
  scrollFrame = true;
  requestAnimationFrame(() => {
    scrollFrame = false;
    rowContext.now = Date.now();
    table.render();
  });
}
$("table-wrap").addEventListener("scroll", () => {
  table.scrolled();
  if (table.newAbove === 0 && !$("new-above").hidden) showNewAbove();
  drawWindow();
}, { passive: true });
new ResizeObserver(() => {
  table.measure();
  drawWindow();
}).observe($("table-wrap"));

// ---- keyboard: j/k and the arrows move the cursor row, Enter opens it ----
const cursor = new RowCursor({
  doc: document, tbody: $("task-rows"), table, ready: () => model.hydrated,
  redraw() {
    rowContext.now = Date.now();
    table.render();
  },
  modal: () => actions?.busy ?? false,
  open: (href) => location.assign(href),
});

// ---- theme: the system's, or the one chosen here (remembered; theme-boot.js applies it) ----
new ThemeToggle({
  root: document.documentElement, button: $("theme-toggle"), storage: storage(),
  media: matchMedia("(prefers-color-scheme: dark)"), window,
});

// ---- pause: hold changes behind a banner (remembered) ----
function showHeld() {
  const n = paused && model.hydrated ? model.heldCount(store, pending) : 0;
  $("held-banner").hidden = n === 0;
  if (n) setText($("held-text"), `${count(n)} ${n === 1 ? "change" : "changes"} held while paused.`);
}

function setPaused(on) {
  paused = on;
  prefs.set("paused", on ? "1" : "0");
  const button = $("pause");
  button.setAttribute("aria-pressed", String(on));
  setText(button, on ? "Resume" : "Pause");
  document.querySelector(".tasks").classList.toggle("is-paused", on);
  if (on) showHeld();
  else if (model.hydrated) scheduler.request();
}
$("pause").addEventListener("click", () => setPaused(!paused));
$("show-held").addEventListener("click", () => {
  paused = false;
  renderData();
  paused = true;
});

// ---- filters: status chips and text search, kept in the URL ----
function applyFilters() {
  matches = taskMatcher(filters, agentName);
  history.replaceState(history.state, "", location.pathname + filtersToSearch(filters, location.search) + location.hash);
  for (const chip of document.querySelectorAll(".chip[data-status]")) {
    chip.setAttribute("aria-pressed", String(filters.statuses.has(chip.dataset.status)));
  }
  $("clear-filters").hidden = !isFiltered(filters);
  $("sign-in").href = `${loginUrl}?next=${encodeURIComponent(location.pathname + location.search)}`;
  if (!model.hydrated) {
    // Before the first sync: narrow the server-rendered rows.
    for (const tr of $("task-rows").querySelectorAll("tr.task")) {
      const title = tr.querySelector(".task-link")?.textContent ?? "";
      tr.hidden = !matches({ id: tr.dataset.id, status: tr.dataset.status, title, agent: null });
    }
    return;
  }
  table.setIds(visibleIds(), { anchor: false });
  table.toTop();
  rowContext.now = Date.now();
  table.render();
  renderCounts();
}

for (const chip of document.querySelectorAll(".chip[data-status]")) {
  chip.addEventListener("click", () => {
    const { statuses } = filters;
    if (statuses.has(chip.dataset.status)) statuses.delete(chip.dataset.status);
    else statuses.add(chip.dataset.status);
    applyFilters();
  });
}
const search = $("search");
search.value = filters.q;
search.addEventListener("input", () => {
  if (filters.q === search.value.trim()) return;
  filters = { ...filters, q: search.value.trim() };
  applyFilters();
});
search.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  event.preventDefault();
  if (!search.value) return search.blur();
  search.value = "";
  filters = { ...filters, q: "" };
  applyFilters();
});
$("clear-filters").addEventListener("click", () => {
  filters = { statuses: new Set(), q: "" };
  search.value = "";
  applyFilters();
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  if (targetKind(event.target) === "text" || actions?.busy) return; // typing, or a dialog's own keys
  event.preventDefault();
  search.focus();
  search.select();
});

// ---- show offline agents (remembered) ----
const showOffline = $("show-offline");
showOffline.checked = prefs.get("showOffline", "0") === "1";
const applyShowOffline = () => $("agent-list").classList.toggle("hide-offline", !showOffline.checked);
showOffline.addEventListener("change", () => {
  prefs.set("showOffline", showOffline.checked ? "1" : "0");
  applyShowOffline();
});
applyShowOffline();

// ---- connection ----
const connection = new Connection({
  store,
  firstPingDelay: 1000, // show a round-trip time soon after connecting
  onStatus(next) {
    status = next;
    badge.update(next, Date.now());
    tickUpdated(Date.now());
  },
});
$("retry-now").addEventListener("click", () => connection.retryNow());
$("reload").addEventListener("click", () => location.reload());

// ---- the clock: relative times, the countdown, liveness ----
function tickUpdated(now) {
  const at = status?.lastMessageAt;
  setText($("updated-ago"), at ? `Updated ${ago(at, now)}` : "");
}
function tick() {
  const now = Date.now();
  badge.tick(now);
  tickUpdated(now);
  for (const span of $("task-rows").querySelectorAll("tr.task .time")) tickTime(span, now);
  if (model.hydrated) agents.tick(model, now, interval());
  else for (const span of $("agent-list").querySelectorAll(".agent-seen")) tickSeen(span, now); // server's rows
}
setInterval(tick, 1000);

setPaused(paused);
applyFilters();
tick();
connection.start();

/** For people in the console and for the browser tests (they wait on these, never sleep). */
window.dashboard = {
  store, connection, model, table, scheduler, actions, cursor,
  get renders() {
    return stats.renders;
  },
  get notifications() {
    return stats.notifications;
  },
  /** ms the last data render took (merge plus DOM patches, before the browser's layout). */
  get lastRenderMs() {
    return stats.lastRenderMs;
  },
};

// Wiring: the Connection feeds the Store; each store change asks for one render (per frame,
// or per 250 ms in a burst); a render merges the changes into the page's Model and patches
// the counts, the windowed task table, the agents and the feed. Outside a render, only the
// controls' own handlers (filters, pause, the connection badge) touch the page.
import { Connection } from "../realtime/connection.js";
import { Store } from "../realtime/store.js";
import { AgentPanel } from "./agents.js";
import { Badge } from "./badge.js";
import { Feed, feedLines } from "./feed.js";
import { filtersToSearch, isFiltered, parseFilters, taskMatcher } from "./filters.js";
import { TASK_STATUS, adminUrl, ago, count } from "./format.js";
import { Model, Pending } from "./model.js";
import { createTaskRow, flash, patchTaskRow, setText, tickSeen, tickTime } from "./render.js";
import { FrameScheduler } from "./schedule.js";
import { VirtualTable } from "./virtual.js";

const $ = (id) => document.getElementById(id);
const urls = { task: document.body.dataset.adminTask, agent: document.body.dataset.adminAgent };
const loginUrl = document.body.dataset.login;

// ---- preferences (remembered; localStorage may be unavailable) ----
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
const rowContext = { taskUrl: urls.task, agentUrl: urls.agent, agentName, now: Date.now() };

// ---- panels ----
const table = new VirtualTable({
  scroller: $("table-wrap"),
  tbody: $("task-rows"),
  columns: 5,
  createRow: () => createTaskRow(document),
  patchRow(tr, id, changed) {
    if (tr.hidden) tr.hidden = false; // a server row hidden by a filter before the first sync
    patchTaskRow(tr, model.tasks.get(id), rowContext);
    if (changed) flash(tr);
  },
  emptyText: () => (isFiltered(filters) ? "No tasks match these filters." : "No tasks yet."),
});
const agents = new AgentPanel(
  { list: $("agent-list"), summary: $("agent-summary"), banner: $("no-agents-banner"), offlineCount: $("offline-count") },
  { taskUrl: urls.task, agentUrl: urls.agent },
);
const feed = new Feed($("feed"), { href: (entity, id) => adminUrl(urls[entity], id) });
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

/** The ids the table shows: every task, newest first, narrowed by the filters. */
function visibleIds() {
  if (!isFiltered(filters)) return model.order;
  return model.order.filter((id) => matches(model.tasks.get(id)));
}

function renderData() {
  if (store.last === null) return; // nothing synced yet: the server-rendered rows stay
  if (paused && model.hydrated) return showHeld();
  const started = performance.now();
  const diff = model.merge(store, pending.take());
  stats.renders += 1;
  const now = Date.now();
  rowContext.now = now;
  const renamed = diff.agents.some((c) => c.before && c.after && c.before.name !== c.after.name);
  if (diff.first || diff.reordered || (isFiltered(filters) && (diff.tasks.length > 0 || renamed))) {
    table.setIds(visibleIds());
  }
  const changed = diff.first ? undefined : new Set(diff.tasks.filter((c) => c.after).map((c) => c.id));
  table.render(changed);
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
}

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
  drawWindow();
}, { passive: true });
new ResizeObserver(() => {
  table.measure();
  drawWindow();
}).observe($("table-wrap"));

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
  const target = event.target;
  if (target.closest?.("input, textarea, select, [contenteditable]")) return;
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
  store, connection, model, table, scheduler,
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

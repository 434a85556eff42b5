// Wiring: the Connection subscribes with the page's view (its filters, newest first, a
// limit) and feeds the Store; each store change asks for one render (per frame, or per 250 ms
// in a burst); a render merges the changes into the page's Model and patches the counts, the
// windowed task table, the agents and the feed. Outside a render, only the controls' own
// handlers (filters, sort, pause, the connection badge, the keyboard cursor, the action
// controls, the older rows) touch the page.
//
// The page holds a window of the tasks, never the table: search and filters are answered by
// the server over the whole table, the counts are the server's, "Show more" grows the window,
// and older rows are fetched on request and shown apart, marked as not live.
//
// Order: this module is the page. It builds its parts top to bottom, each after the parts it
// uses (nothing is used before its declaration); the rows are drawn again through one
// redraw(); the connection starts last, at the end of the file.
import { Connection } from "../realtime/connection.js";
import { Store } from "../realtime/store.js";
import { TaskActions } from "./actions-ui.js";
import { AgentPanel } from "./agents.js";
import { Badge } from "./badge.js";
import { RowCursor } from "./cursor.js";
import { Feed, feedLines } from "./feed.js";
import {
  describeFilters, filtersToSearch, fromView, isFiltered, nextLimit, noFilters, parseFilters, sameFilters, toView,
} from "./filters.js";
import { TASK_STATUS, adminUrl, ago, clockTime, count } from "./format.js";
import { targetKind } from "./keys.js";
import { Model, Pending } from "./model.js";
import { OlderRows } from "./older.js";
import { createTaskRow, flash, patchTaskRow, setText, tickSeen, tickTime } from "./render.js";
import { FrameScheduler } from "./schedule.js";
import { NEWEST, SORTS, ariaSort, isNewest, nextSort, sortIds } from "./sort.js";
import { ThemeToggle } from "./theme.js";
import { VirtualTable } from "./virtual.js";

const $ = (id) => document.getElementById(id);
const page = document.body.dataset;
const loginUrl = page.login;
const taskPage = page.taskPage; // /tasks/0/: a task's title, its line in the feed, an agent's task
const agentPage = page.agentPage; // /agents/0/: an agent's name, in the table, the panel and the feed
const canChange = page.canChange === "1";
const SEARCH_DELAY = 300; // ms of quiet typing before the search goes to the server

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

function readJson(id) {
  try {
    return JSON.parse($(id)?.textContent ?? "null");
  } catch {
    return null;
  }
}

// ---- state ----
const store = new Store();
const model = new Model();
const pending = new Pending();
const stats = { renders: 0, notifications: 0, lastRenderMs: null };
// The view the server rendered (its own reading of the URL); the URL when there was none.
const initialView = readJson("initial-view");
let filters = initialView ? fromView(initialView) : parseFilters(location.search);
let sort = NEWEST;
let paused = prefs.get("paused", "0") === "1";
let status = null;
let everLive = false;
let stale = false;
let toTopOnView = false; // a new filter starts from the top; "Show more" keeps the place
// When the data the page shows was current: the first paint's, then each render's (or a
// later confirmation that nothing changed). "Updated" shows it; it never moves while stale.
let dataAt = Date.parse(page.renderedAt) || Date.now();

// Agent names before the first sync come from the server-rendered filter's options.
const serverAgents = new Map([...$("agent-filter").options].filter((o) => o.value).map((o) => [Number(o.value), o.textContent]));
const agentName = (id) => model.agents.get(id)?.name ?? serverAgents.get(id) ?? `#${id}`;
const rowContext = { taskUrl: taskPage, agentUrl: agentPage, agentName, now: Date.now(), disabled: false };

// ---- panels ----
const table = new VirtualTable({
  scroller: $("table-wrap"),
  tbody: $("task-rows"),
  columns: canChange ? 8 : 6,
  createRow: () => createTaskRow(document, { actions: canChange }),
  patchRow(tr, id, changed) {
    patchTaskRow(tr, model.tasks.get(id), rowContext);
    if (changed) flash(tr);
  },
  emptyText: () => {
    if (status?.viewPending) return "Loading…";
    return isFiltered(filters) ? "No tasks match these filters." : "No tasks yet.";
  },
});
/** Draw the rows shown again from the page's Model, their relative times as of now. */
function redraw() {
  rowContext.now = Date.now();
  table.render();
}

// ---- cancel and requeue (only drawn for users who may change tasks) ----
const csrfToken = () => document.querySelector('input[name="csrfmiddlewaretoken"]')?.value ?? "";
async function postAction(id, action) {
  const response = await fetch(`${page.apiTasks}${encodeURIComponent(id)}/${action}/`, {
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
    if (model.hydrated) redraw();
  },
}) : null;
if (actions) Object.assign(rowContext, { selected: actions.selected, pending: (id) => actions.pending.get(id) });

// ---- keyboard: j/k and the arrows move the cursor row, Enter opens it ----
const cursor = new RowCursor({
  doc: document, tbody: $("task-rows"), table, ready: () => model.hydrated, redraw,
  modal: () => actions?.busy ?? false,
  open: (href) => location.assign(href),
});

/** Is the person busy with the rows? Then nothing moves, even at the top of the table. */
const interacting = () => $("task-rows").contains(document.activeElement) || (actions !== null && (actions.selection.size > 0 || actions.busy));
const agents = new AgentPanel(
  { list: $("agent-list"), summary: $("agent-summary"), banner: $("no-agents-banner"), offlineCount: $("offline-count") },
  { taskUrl: taskPage, agentUrl: agentPage },
);
// A task's line opens the task's page (its timeline); an agent's, the agent's page.
const feed = new Feed($("feed"), { href: (entity, id) => adminUrl(entity === "task" ? taskPage : agentPage, id) });
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

// ---- connection (started last, below, once every part it feeds exists) ----
const connection = new Connection({
  store,
  view: toView(filters),
  firstPingDelay: 1000, // show a round-trip time soon after connecting
  onStatus(next) {
    const now = Date.now();
    const wasPending = status?.viewPending;
    status = next;
    if (next.state === "open") everLive = true;
    // The first connection's wait is not staleness: the first paint is fresh from the server.
    setStale(next.state !== "open" && (everLive || next.attempt > 0 || next.state !== "connecting"));
    $("table-wrap").setAttribute("aria-busy", String(next.viewPending));
    drawViewError();
    if (wasPending && !next.viewPending) renderFooter();
    badge.update(next, now);
    tickUpdated(now);
  },
});
$("retry-now").addEventListener("click", () => connection.retryNow());
$("reload").addEventListener("click", () => location.reload());

// ---- older rows: past the live window, on request, not live ----
const older = new OlderRows({
  root: $("older"), tbody: $("older-rows"), note: $("older-note"), more: $("older-more"), url: page.older,
  fetchJson: async (url) => {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  },
  createRow: () => createTaskRow(document),
  patchRow: (tr, row) => patchTaskRow(tr, row, { ...rowContext, now: Date.now() }),
});
/** The view's filters as a query string for the older rows (no limit: each page has its own). */
const viewQuery = () => filtersToSearch({ ...filters, limit: noFilters().limit }).replace(/^\?/, "");
$("load-older").addEventListener("click", () => {
  const bottom = model.order.at(-1);
  if (bottom === undefined) return;
  older.load(viewQuery(), bottom).then(renderFooter);
});
$("older-clear").addEventListener("click", () => {
  older.clear();
  renderFooter();
  $("load-older").focus();
});

// ---- rendering ----
const interval = () => status?.interval ?? 25000;

/** The ids the table shows: the window, newest first, or in the order of a column's sort. */
const visibleIds = () => sortIds(model.order, model.tasks, sort, agentName);

function renderData() {
  if (store.last === null) return; // nothing synced yet: the server-rendered rows stay
  // Paused, the page holds still; a view the person asked for meanwhile is shown all the same.
  if (paused && model.hydrated && !pending.view) return showHeld();
  const started = performance.now();
  const hadFocus = cursor.focused;
  const diff = model.merge(store, pending.take());
  stats.renders += 1;
  const now = Date.now();
  rowContext.now = now;
  dataAt = now;
  const renamed = diff.agents.some((c) => c.before && c.after && c.before.name !== c.after.name);
  const resorted = !isNewest(sort) && (diff.tasks.length > 0 || (sort.key === "agent" && renamed));
  if (diff.first || diff.reordered || resorted) {
    table.setIds(visibleIds(), { hold: interacting(), anchor: !(diff.viewChanged && toTopOnView) });
  }
  if (diff.viewChanged && toTopOnView) {
    table.toTop();
    toTopOnView = false;
  }
  actions?.settle();
  const changed = diff.first || diff.viewChanged ? undefined : new Set(diff.tasks.filter((c) => c.after).map((c) => c.id));
  table.render(changed);
  cursor.keep(hadFocus);
  agents.render(model, diff, now, interval());
  if (diff.first || diff.agents.some((c) => !c.before || !c.after) || renamed) renderAgentOptions();
  renderCounts();
  if (!diff.first) feed.add(feedLines(diff, agentName), now);
  showHeld();
  tickUpdated(now);
  stats.lastRenderMs = performance.now() - started;
}

/** The status cards: the server's counts over the whole table (never counted here). */
function renderCounts() {
  const counts = model.counts;
  if (counts) {
    let total = 0;
    for (const key of Object.keys(TASK_STATUS)) {
      total += counts[key] ?? 0;
      setText(document.querySelector(`[data-count="${key}"]`), count(counts[key] ?? 0));
    }
    setText(document.querySelector('[data-count="total"]'), count(total));
  }
  renderFooter();
  showNewAbove();
}

/** Below the table: how many are shown of how many match, "Show more", older rows. */
function renderFooter() {
  const shown = model.hydrated ? model.order.length : table.ids.length;
  const matched = model.counts?.matched ?? shown;
  const filtered = isFiltered(filters);
  let text;
  if (status?.viewPending) text = "Loading…";
  else if (shown >= matched) text = `${count(matched)} ${filtered ? "matching " : ""}${matched === 1 ? "task" : "tasks"}, newest first`;
  else text = `The ${count(shown)} newest of ${count(matched)}${filtered ? " matching" : ""} tasks`;
  if (!isNewest(sort)) text += ` · sorted by ${SORTS[sort.key].label.toLowerCase()} within these`;
  setText($("task-footer"), text);
  const more = matched > shown && !status?.viewPending;
  const next = nextLimit(filters.limit);
  const showMore = $("show-more");
  showMore.hidden = !more || next === null;
  if (!showMore.hidden) setText(showMore, `Show ${count(Math.min(next - filters.limit, matched - shown))} more`);
  $("load-older").hidden = !more || next !== null || !$("older").hidden;
  $("feed-scope").textContent = feedScope(shown);
}

function feedScope(shown) {
  const words = describeFilters(filters, agentName);
  const what = words ? `the ${count(shown)} newest tasks matching ${words}` : `the ${count(shown)} newest tasks`;
  return `Changes to ${what}, and to every agent.`;
}

// Rows that came in above a view held still: said below the table (nothing above it moves).
function showNewAbove() {
  const n = table.newAbove;
  $("new-above").hidden = n === 0;
  if (n) setText($("new-above"), `↑ ${count(n)} new above`);
}
$("new-above").addEventListener("click", () => {
  table.toTop();
  redraw();
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
    redraw();
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

// ---- theme: the system's, or the one chosen here (remembered; theme-boot.js applies it) ----
new ThemeToggle({
  root: document.documentElement, button: $("theme-toggle"), storage: storage(),
  media: matchMedia("(prefers-color-scheme: dark)"), window,
});

// ---- pause: hold everything (rows, counts, agents, feed, chart) behind a banner (remembered) ----
function showHeld() {
  const n = paused && model.hydrated ? model.heldCount(store, pending) : 0;
  $("held-banner").hidden = !paused;
  const held = n === 0 ? "No change held yet" : `${count(n)} ${n === 1 ? "change" : "changes"} held`;
  setText($("held-text"), `Paused: showing the data as of ${clockTime(dataAt)}. ${held}; only the times still tick.`);
  $("show-held").hidden = n === 0;
}

function setPaused(on) {
  paused = on;
  prefs.set("paused", on ? "1" : "0");
  const button = $("pause");
  button.setAttribute("aria-pressed", String(on));
  setText(button, on ? "Resume" : "Pause");
  document.querySelector(".tasks").classList.toggle("is-paused", on);
  badge.setPaused(on, Date.now());
  window.dashboard?.chart?.hold(on);
  showHeld();
  if (!on && model.hydrated) scheduler.request();
}
$("pause").addEventListener("click", () => setPaused(!paused));
$("show-held").addEventListener("click", () => {
  paused = false;
  renderData();
  paused = true;
  showHeld();
});

// ---- filters: status chips, the agent, text search (on the server), kept in the URL ----
// The server's words when the link's own filters could not be read (until they change).
let linkError = $("view-error").hidden ? "" : $("view-error").textContent;

/** A view the server did not accept, or a link whose filters it could not read. */
function drawViewError() {
  const el = $("view-error");
  const text = status?.viewError ? `The server did not accept this view: ${status.viewError}` : linkError;
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

/**
 * Ask the server for the view of `next`: the URL follows (bookmarkable), the table waits for
 * the new window (its sync replaces the rows), older rows of the last view go.
 */
function applyFilters(next, { toTop = true } = {}) {
  if (sameFilters(next, filters)) return;
  filters = next;
  toTopOnView = toTop;
  linkError = "";
  history.replaceState(history.state, "", location.pathname + filtersToSearch(filters, location.search) + location.hash);
  drawFilters();
  if (toTop) older.clear();
  connection.setView(toView(filters));
  drawViewError();
}

/** The controls as the filters are. */
function drawFilters() {
  for (const chip of document.querySelectorAll(".chip[data-status]")) {
    chip.setAttribute("aria-pressed", String(filters.statuses.has(chip.dataset.status)));
  }
  const select = $("agent-filter");
  const wanted = filters.agent === null ? "" : String(filters.agent);
  if (filters.agent !== null && ![...select.options].some((o) => o.value === wanted)) renderAgentOptions();
  if (select.value !== wanted) select.value = wanted;
  $("clear-filters").hidden = !isFiltered(filters);
  $("sign-in").href = `${loginUrl}?next=${encodeURIComponent(location.pathname + location.search)}`;
  renderFooter();
}

/** The agent filter's options: the agents the page holds, by name (and the chosen one). */
function renderAgentOptions() {
  const select = $("agent-filter");
  const known = model.hydrated ? [...model.agents.values()] : [...serverAgents].map(([id, name]) => ({ id, name }));
  known.sort((a, b) => String(a.name).localeCompare(String(b.name)) || a.id - b.id);
  if (filters.agent !== null && !known.some((a) => a.id === filters.agent)) known.push({ id: filters.agent, name: `#${filters.agent} (no longer listed)` });
  const options = [new Option("All agents", "")];
  for (const agent of known) options.push(new Option(String(agent.name), String(agent.id)));
  const same = options.length === select.options.length
    && options.every((o, i) => o.value === select.options[i].value && o.text === select.options[i].text);
  if (!same) select.replaceChildren(...options);
  select.value = filters.agent === null ? "" : String(filters.agent);
}

for (const chip of document.querySelectorAll(".chip[data-status]")) {
  chip.addEventListener("click", () => {
    const statuses = new Set(filters.statuses);
    if (statuses.has(chip.dataset.status)) statuses.delete(chip.dataset.status);
    else statuses.add(chip.dataset.status);
    applyFilters({ ...filters, statuses, limit: noFilters().limit });
  });
}
$("agent-filter").addEventListener("change", (event) => {
  const agent = event.target.value ? Number(event.target.value) : null;
  applyFilters({ ...filters, agent, limit: noFilters().limit });
});
const search = $("search");
search.value = filters.q;
let searchTimer = null;
function searchNow() {
  clearTimeout(searchTimer);
  searchTimer = null;
  const q = search.value.trim();
  if (q !== filters.q) applyFilters({ ...filters, q, limit: noFilters().limit });
}
search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(searchNow, SEARCH_DELAY);
});
search.addEventListener("keydown", (event) => {
  if (event.key === "Enter") return searchNow();
  if (event.key !== "Escape") return;
  event.preventDefault();
  if (!search.value) return search.blur();
  search.value = "";
  searchNow();
});
$("clear-filters").addEventListener("click", () => {
  search.value = "";
  clearTimeout(searchTimer);
  applyFilters(noFilters());
});
$("show-more").addEventListener("click", () => {
  const limit = nextLimit(filters.limit);
  if (limit !== null) applyFilters({ ...filters, limit }, { toTop: false });
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  if (targetKind(event.target) === "text" || actions?.busy) return; // typing, or a dialog's own keys
  event.preventDefault();
  search.focus();
  search.select();
});

// ---- sort: the rows shown, by a column (the window stays the newest tasks) ----
function drawSort() {
  for (const button of document.querySelectorAll("#task-table thead .sort")) {
    button.closest("th").setAttribute("aria-sort", ariaSort(sort, button.dataset.sort));
  }
}
for (const button of document.querySelectorAll("#task-table thead .sort")) {
  button.addEventListener("click", () => {
    sort = nextSort(sort, button.dataset.sort);
    drawSort();
    if (model.hydrated) {
      table.setIds(visibleIds(), { anchor: false });
      table.toTop();
      redraw();
    }
    renderFooter();
  });
}

// ---- show offline agents (remembered) ----
const showOffline = $("show-offline");
showOffline.checked = prefs.get("showOffline", "0") === "1";
const applyShowOffline = () => $("agent-list").classList.toggle("hide-offline", !showOffline.checked);
showOffline.addEventListener("change", () => {
  prefs.set("showOffline", showOffline.checked ? "1" : "0");
  applyShowOffline();
});
applyShowOffline();

// ---- stale: while the page is not live, its rows say so and offer no action ----
function setStale(on) {
  if (stale === on) return;
  stale = on;
  for (const el of [$("task-table"), $("agent-list")]) {
    if (on) el.dataset.stale = "true";
    else delete el.dataset.stale;
  }
  rowContext.disabled = on;
  for (const control of $("task-rows").querySelectorAll(".row-select, .row-action")) control.disabled = on;
  actions?.setDisabled(on);
  if (model.hydrated) redraw();
}

// ---- the clock: relative times, the countdown, liveness ----
function tickUpdated(now) {
  const s = connection.status;
  // Live and nothing waiting to be drawn: a frame that confirmed the store vouches for the rows.
  if (s && s.state === "open" && !paused && model.hydrated && pending.empty && !s.viewPending && s.confirmedAt > dataAt) dataAt = s.confirmedAt;
  const el = $("updated-ago");
  setText(el, `Updated ${ago(dataAt, now)}`);
  el.title = `The data shown is as of ${clockTime(dataAt)}`;
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

/** For people in the console and for the browser tests (they wait on these, never sleep). */
window.dashboard = {
  store, connection, model, table, scheduler, actions, cursor, older,
  get filters() {
    return filters;
  },
  get paused() {
    return paused;
  },
  get sort() {
    return sort;
  },
  get dataAt() {
    return dataAt;
  },
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

// The URL says what the server rendered (a link's unknown parameters are dropped).
history.replaceState(history.state, "", location.pathname + filtersToSearch(filters, location.search) + location.hash);
setPaused(paused);
drawFilters();
drawSort();
tick();
connection.start();

// What the task and agent pages share: the stream connection (the dashboard's own client),
// a small connection pill, the timeline and its "Older changes" button, and the clock that
// keeps "running for" and "ago" counting.
import { Connection } from "../realtime/connection.js";
import { Store } from "../realtime/store.js";
import { describeConnection } from "../dashboard/badge.js";
import { ago, parseTime } from "../dashboard/format.js";
import { Timeline, duration } from "./timeline.js";
import { DomTimelineView } from "./view.js";

const $ = (id) => document.getElementById(id);

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/** Every second: the durations that are still counting, and "(8 s ago)". */
function tick(now) {
  for (const el of document.querySelectorAll("[data-since]")) {
    const since = parseTime(el.dataset.since);
    if (since !== null) el.textContent = duration((now - since) / 1000);
  }
  for (const el of document.querySelectorAll(".ago[data-time]")) {
    el.textContent = `(${ago(parseTime(el.dataset.time), now)})`;
  }
}

/**
 * Start a detail page. `onStore(store, timeline)` runs after every applied frame and tells
 * the timeline what version of its object the stream shows; `onStatus(state)`, when given,
 * after every change of the connection's state ("open", "reconnecting", …).
 */
export function startDetailPage(onStore, { onStatus: statusChanged = () => {} } = {}) {
  const list = $("timeline");
  const view = new DomTimelineView({ list, older: $("older"), fields: $("fields"), deleted: $("deleted-banner") });
  const timeline = new Timeline({
    url: list.dataset.url, after: Number(list.dataset.after) || 0, version: Number(list.dataset.version) || 0,
    view, fetchJson,
  });
  $("older").addEventListener("click", () => timeline.older().catch((error) => view.failed(error)));

  const store = new Store();
  store.subscribe(() => onStore(store, timeline));
  const pill = $("conn");
  const connection = new Connection({
    store,
    onStatus(status) {
      const described = describeConnection(status, Date.now());
      document.body.dataset.connection = status.state;
      pill.dataset.connection = status.state;
      $("conn-text").textContent = described.text;
      if (described.announce) $("conn-status").textContent = described.announce;
      statusChanged(status.state);
    },
  });
  connection.start();
  setInterval(() => tick(Date.now()), 1000);
  tick(Date.now());
  window.detail = { store, connection, timeline };
  return window.detail;
}

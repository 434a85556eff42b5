// The throughput chart: tasks succeeded and failed per minute over the last hour (stacked
// bars) and the queue depth over time (a line), drawn as inline SVG from what the server
// computed out of the stored history (tasks/throughput.py), so a reload draws the same.
//
// Live without a second socket: the chart refetches every few seconds (a 304 when the stream
// head and the minute are unchanged), and sooner when the dashboard's counts change. While the
// person has paused the dashboard, the chart holds still too.
// Geometry is pure functions, the DOM one class; no charting library, no build step.

const SVG = "http://www.w3.org/2000/svg";
export const WIDTH = 600;
export const HEIGHT = 120;

/** The highest value of a series (nulls are unknown minutes), at least 1. */
const top = (values) => Math.max(1, ...values.filter((v) => v !== null && v !== undefined));

/** A round number at or above `n` for the scale: 1, 2, 5, 10, 20, 50, ... */
export function niceMax(n) {
  const base = 10 ** Math.floor(Math.log10(Math.max(1, n)));
  return [1, 2, 5, 10].map((m) => m * base).find((v) => v >= n);
}

/**
 * Bars for succeeded (bottom) and failed (stacked on top), one per minute.
 * @returns {{max: number, bars: {index: number, x: number, w: number, succeeded: object|null, failed: object|null}[]}}
 */
export function barGeometry(data, width = WIDTH, height = HEIGHT) {
  const n = data.minutes.length;
  const totals = data.succeeded.map((s, i) => (s === null ? null : s + (data.failed[i] ?? 0)));
  const max = niceMax(top(totals));
  const slot = width / n;
  const scale = (v) => (v / max) * height;
  const bars = data.minutes.map((_, index) => {
    const s = data.succeeded[index];
    const f = data.failed[index];
    const x = index * slot + slot * 0.12;
    const w = slot * 0.76;
    if (s === null || f === null) return { index, x, w, succeeded: null, failed: null };
    const hs = scale(s);
    const hf = scale(f);
    return { index, x, w, succeeded: { y: height - hs, h: hs, n: s }, failed: { y: height - hs - hf, h: hf, n: f } };
  });
  return { max, bars };
}

/** An SVG path through the known queue depths (a gap where a minute is unknown). */
export function linePath(values, width = WIDTH, height = HEIGHT) {
  const max = niceMax(top(values));
  const step = values.length > 1 ? width / (values.length - 1) : width;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    const x = (i * step).toFixed(1);
    const y = (height - (v / max) * height).toFixed(1);
    d += `${pen ? "L" : "M"}${x} ${y}`;
    pen = true;
  });
  return { d, max };
}

/** Totals for the words beside the chart. */
export function summarize(data) {
  const sum = (values) => values.reduce((a, v) => a + (v ?? 0), 0);
  return { succeeded: sum(data.succeeded), failed: sum(data.failed), queued: data.queued.at(-1) ?? 0 };
}

/** "14:02" of an ISO time, in the browser's time zone. */
const hhmm = (iso) => {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
};

function node(doc, name, attrs = {}, text) {
  const el = doc.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The chart in the page: a `root` section holding two SVGs, a summary and the axis labels. */
export class ThroughputChart {
  /** @type {number} */ renders = 0;

  /** @private */ #opts;
  /** @private */ #timer = null;
  /** @private */ #due = Infinity;
  /** @private */ #inflight = null;
  /** @private */ #lastFetch = -Infinity;
  /** @private */ #shown = null;
  /** @private */ #held = false;
  /** @private */ #drawn = false; // a picture was fetched and drawn

  /**
   * @param {object} options
   * @param {HTMLElement} options.root
   * @param {string} options.url
   * @param {(url: string) => Promise<any>} options.fetchJson
   * @param {number} [options.intervalMs] refetch at least this often
   * @param {number} [options.minGapMs] and never more often than this
   * @param {() => number} [options.now]
   * @param {(fn: Function, ms: number) => unknown} [options.setTimeout]
   * @param {(handle: unknown) => void} [options.clearTimeout]
   * @param {() => boolean} [options.hidden] the page is in a background tab
   */
  constructor(options) {
    this.#opts = {
      intervalMs: 5000, minGapMs: 1500, now: Date.now, setTimeout: globalThis.setTimeout.bind(globalThis),
      clearTimeout: globalThis.clearTimeout.bind(globalThis), hidden: () => false, ...options,
    };
  }

  start() {
    this.#schedule(0);
  }

  /** Hold the picture still (the dashboard is paused), or let it move again. */
  hold(on) {
    const was = this.#held;
    this.#held = on;
    if (was && !on) this.soon();
  }

  /** Is the picture held still? */
  get held() {
    return this.#held;
  }

  /** Something changed in the stream: refetch soon (at most once per minGapMs). */
  soon() {
    if (this.#held) return;
    const { now, minGapMs } = this.#opts;
    this.#schedule(Math.max(0, this.#lastFetch + minGapMs - now()));
  }

  /** Fetch and draw now (one fetch at a time). */
  refresh() {
    if (this.#inflight) return this.#inflight;
    this.#lastFetch = this.#opts.now();
    this.#inflight = this.#opts.fetchJson(this.#opts.url)
      .then((data) => {
        this.render(data);
        this.#drawn = true;
      })
      .catch((error) => console.warn("throughput chart: fetch failed", error))
      .finally(() => {
        this.#inflight = null;
      });
    return this.#inflight;
  }

  /** Draw `data` (the server's JSON); a repeat of the last picture draws nothing. */
  render(data) {
    const text = JSON.stringify(data);
    if (text === this.#shown) return;
    this.#shown = text;
    this.renders += 1;
    const { root } = this.#opts;
    const doc = root.ownerDocument;
    const totals = summarize(data);
    root.dataset.succeeded = String(totals.succeeded);
    root.dataset.failed = String(totals.failed);
    root.dataset.queued = String(totals.queued);
    const bars = barGeometry(data);
    const line = linePath(data.queued);
    root.querySelector("[data-part=bars]").replaceChildren(this.#bars(doc, data, bars));
    root.querySelector("[data-part=queue]").replaceChildren(this.#queue(doc, data, line));
    const set = (part, value) => {
      const el = root.querySelector(`[data-part=${part}]`);
      if (el) el.textContent = value;
    };
    set("succeeded", totals.succeeded.toLocaleString("en-US"));
    set("failed", totals.failed.toLocaleString("en-US"));
    set("queued", totals.queued.toLocaleString("en-US"));
    set("bars-max", `${bars.max}/min`);
    set("queue-max", String(line.max));
    set("from", hhmm(data.minutes[0]));
    set("to", "now");
  }

  /** @private */
  #bars(doc, data, { bars }) {
    const svg = node(doc, "svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", class: "chart-svg", "aria-hidden": "true" });
    for (const bar of bars) {
      const minute = data.minutes[bar.index];
      const g = node(doc, "g", { "data-minute": minute });
      if (bar.succeeded === null) {
        g.append(node(doc, "rect", { x: bar.x, y: 0, width: bar.w, height: HEIGHT, class: "bar-unknown" }));
        g.append(node(doc, "title", {}, `${hhmm(minute)} · before the kept history`));
      } else {
        g.setAttribute("data-succeeded", bar.succeeded.n);
        g.setAttribute("data-failed", bar.failed.n);
        if (bar.succeeded.h > 0) g.append(node(doc, "rect", { x: bar.x, y: bar.succeeded.y, width: bar.w, height: bar.succeeded.h, class: "bar-succeeded" }));
        if (bar.failed.h > 0) g.append(node(doc, "rect", { x: bar.x, y: bar.failed.y, width: bar.w, height: bar.failed.h, class: "bar-failed" }));
        // The whole slot answers the pointer, so an empty minute has a tooltip too.
        g.append(node(doc, "rect", { x: bar.x, y: 0, width: bar.w, height: HEIGHT, class: "bar-hit" }));
        g.append(node(doc, "title", {}, `${hhmm(minute)} · ${bar.succeeded.n} succeeded, ${bar.failed.n} failed`));
      }
      svg.append(g);
    }
    return svg;
  }

  /** @private */
  #queue(doc, data, { d }) {
    const svg = node(doc, "svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", class: "chart-svg", "aria-hidden": "true" });
    svg.append(node(doc, "path", { d, class: "queue-line", "vector-effect": "non-scaling-stroke" }));
    return svg;
  }

  /** @private One timer: the earliest of the next poll and a requested refresh. */
  #schedule(delay) {
    const { now, setTimeout, clearTimeout } = this.#opts;
    const at = now() + delay;
    if (at >= this.#due) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#due = at;
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  /** @private */
  #tick() {
    this.#timer = null;
    this.#due = Infinity;
    // Held, it still draws its first picture (the page's state when it was loaded paused).
    if ((this.#held && this.#drawn) || this.#opts.hidden()) return this.#schedule(this.#opts.intervalMs);
    return this.refresh().finally(() => this.#schedule(this.#opts.intervalMs));
  }
}

/** Mount on the dashboard: the section `#throughput`, its stylesheet, the Store's changes. */
function mount() {
  const root = document.getElementById("throughput");
  if (!root) return null;
  if (!document.querySelector("link[data-chart-css]")) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = new URL("./chart.css", import.meta.url).href;
    link.dataset.chartCss = "";
    document.head.append(link);
  }
  const chart = new ThroughputChart({
    root, url: root.dataset.url, hidden: () => document.hidden,
    fetchJson: async (url) => {
      // "no-cache": the browser revalidates its copy (If-None-Match), the server answers 304
      const response = await fetch(url, { cache: "no-cache", credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      return response.json();
    },
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) chart.soon();
  });
  // main.js runs first (module order). With a view, ranges arrive for every change anywhere;
  // the chart only moves when a status count does (v1: on every change, as before).
  const store = window.dashboard?.store;
  let counts = store?.counts;
  store?.subscribe(() => {
    if (store.view !== null && store.counts === counts) return;
    counts = store.counts;
    chart.soon();
  });
  chart.hold(Boolean(window.dashboard?.paused));
  chart.start();
  if (window.dashboard) window.dashboard.chart = chart;
  return chart;
}

if (typeof document !== "undefined") mount();

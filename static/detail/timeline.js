// A detail page's live timeline: which items to fetch, and where they go.
//
// The page is rendered with the newest items; the stream then says when the task (or agent)
// changed, as a version number. A version above the one the page reflects means "fetch the
// items after the newest one shown" from the stored history (tasks/pages.py), which has
// every change, even those a reconnecting stream folds into one row. One fetch at a time; a
// change during a fetch asks for one more after it. The DOM is behind a small `view`, so the
// rules run in node tests without a browser.
//
// A task's progress reports are folded into one line per run ("Progress 12% → 92%, 8
// reports"), which still holds one element per report. When the newest item shown is
// progress-only, the fetch says where its run starts (`run=`); if the new changes continue
// it, the answer's oldest item is the run extended: `replaces` names the item it takes the
// place of (one change shown, now a line), or `extends` the folded line it goes on (the item
// carries the line's new words and only the new reports, which go on top of the line's own).

/**
 * @typedef {object} TimelineView
 * @property {(items: {seq: number, html: string}[]) => void} prepend newest first, above the rest
 * @property {(items: {seq: number, html: string}[]) => void} append older ones, below the rest
 * @property {(items: {seq: number, html: string}[]) => void} replace the whole list
 * @property {(seq: number) => void} [remove] drop the item whose newest change is `seq` (a change the server folded)
 * @property {(seq: number, item: {seq: number, html: string}) => boolean} [extend] the folded line
 *   whose newest change is `seq` takes `item`'s words and numbers and its new changes on top;
 *   false when the list has no such line
 * @property {(max: number) => boolean} trim drop the oldest items while more than `max` changes are
 *   shown (never the newest item); true if any went
 * @property {() => number|null} oldestSeq the oldest change the list covers
 * @property {() => number|null} [topRun] when the newest item is progress-only (one change or a
 *   folded line), the oldest change of its run (the server extends it rather than adding a line)
 * @property {(on: boolean) => void} setOlder show the "Older changes" button
 * @property {(html: string) => void} setFields
 * @property {(on: boolean) => void} setDeleted
 * @property {(error: unknown) => void} [failed]
 */

export class Timeline {
  /** @type {number} the highest version the page shows */ known;
  /** @type {number} the highest seq in the list */ newest;
  /** @type {boolean} the object is gone: nothing more will change */ deleted = false;

  /** @private */ #wanted = 0;
  /** @private */ #inflight = null;
  /** @private */ #again = false;
  /** @private the list is not what the server assumed: fetch the newest page afresh */ #startOver = false;
  /** @private */ #retry = null;
  /** @private */ #opts;

  /**
   * @param {object} options
   * @param {string} options.url the page's timeline endpoint
   * @param {number} options.after the newest seq rendered
   * @param {number} options.version the version rendered
   * @param {TimelineView} options.view
   * @param {(url: string) => Promise<any>} options.fetchJson
   * @param {number} [options.max] changes kept in the page (older ones behind the button)
   * @param {number} [options.retryMs] wait before trying again after a failed fetch
   * @param {(fn: Function, ms: number) => unknown} [options.setTimeout]
   */
  constructor({ url, after, version, view, fetchJson, max = 2000, retryMs = 3000, setTimeout = globalThis.setTimeout }) {
    this.#opts = { url, view, fetchJson, max, retryMs, setTimeout };
    this.newest = after;
    this.known = version;
    this.#wanted = version;
  }

  /** The stream shows `version` of the object: fetch what the page lacks, if anything. */
  want(version) {
    if (this.deleted || !(version > this.known) || version <= this.#wanted && this.#inflight) return this.#inflight;
    this.#wanted = Math.max(this.#wanted, version);
    return this.refresh();
  }

  /** Fetch the items after the newest shown (and the fields); coalesces concurrent calls. */
  refresh() {
    if (this.#inflight) {
      this.#again = true;
      return this.#inflight;
    }
    this.#inflight = this.#run().finally(() => {
      this.#inflight = null;
    });
    return this.#inflight;
  }

  /** Fetch the page of items older than the oldest shown. */
  async older() {
    const { view, fetchJson, url } = this.#opts;
    const oldest = view.oldestSeq();
    if (oldest === null) return;
    const data = await fetchJson(`${url}?before=${oldest}`);
    view.append((data.items ?? []).filter((item) => item.seq < oldest));
    view.setOlder(Boolean(data.older));
  }

  /** @private */
  async #run() {
    do {
      this.#again = false;
      const { view, fetchJson, url } = this.#opts;
      let data;
      const run = view.topRun?.() ?? null;
      const query = this.#startOver ? "" : `?after=${this.newest}${run !== null ? `&run=${run}` : ""}`;
      try {
        data = await fetchJson(`${url}${query}`);
      } catch (error) {
        view.failed?.(error);
        this.#scheduleRetry();
        return;
      }
      this.#startOver = false;
      this.#apply(data);
    } while (this.#again && !this.deleted);
  }

  /** @private */
  #apply(data) {
    const { view, max } = this.#opts;
    const items = data.items ?? [];
    if (data.reset) {
      view.replace(items);
      this.newest = items.length ? items[0].seq : this.newest;
      view.setOlder(Boolean(data.older));
    } else {
      const fresh = items.filter((item) => item.seq > this.newest);
      if (fresh.length && data.extends && !view.extend?.(data.extends, fresh.at(-1))) {
        this.#startOver = true; // the line it goes on is not in the list: take the newest page
        this.#again = true;
      } else if (fresh.length) {
        if (data.replaces) view.remove?.(data.replaces);
        const above = data.extends ? fresh.slice(0, -1) : fresh;
        if (above.length) view.prepend(above);
        this.newest = Math.max(this.newest, ...fresh.map((item) => item.seq));
      }
    }
    if (view.trim(max)) view.setOlder(true);
    if (data.fields_html) view.setFields(data.fields_html);
    this.known = Math.max(this.known, data.version ?? 0);
    if (data.deleted) {
      this.deleted = true;
      view.setDeleted(true);
    }
  }

  /** @private */
  #scheduleRetry() {
    if (this.#retry !== null) return;
    this.#retry = this.#opts.setTimeout(() => {
      this.#retry = null;
      if (this.#wanted > this.known || this.#startOver) this.refresh();
    }, this.#opts.retryMs);
  }
}

/**
 * "850 ms", "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h": the server's `duration()`
 * (tasks/pages.py), for the durations that keep counting while a task waits or runs.
 */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(Math.max(0, seconds) * 1000)} ms`;
  const s = Math.floor(seconds);
  for (const [size, unit, small, smallUnit] of [[86400, "d", 3600, "h"], [3600, "h", 60, "min"], [60, "min", 1, "s"]]) {
    if (s >= size) {
      const rest = Math.floor((s % size) / small);
      return `${Math.floor(s / size)} ${unit}${rest ? ` ${rest} ${smallUnit}` : ""}`;
    }
  }
  return `${s} s`;
}

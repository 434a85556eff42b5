import { ENTITIES, MSG, SIDES, VIEW } from "./constants.js";
import { isPart } from "./parts.js";

// Event `entity` -> the Map that holds it (constants.js). Unknown entities still advance
// `last`, because the sequence is shared by every entity and the protocol may grow new ones.
const KEYS = Object.values(ENTITIES);
const SIDE_KEYS = Object.values(SIDES);
const WINDOWED = ENTITIES[VIEW.ENTITY]; // "tasks": with a view, only a window of them is held

const stringOrNull = (value) => (typeof value === "string" && value ? value : null);

/**
 * @typedef {object} Changes what moved since the last `drain()`
 * @property {Set<unknown>} tasks ids of tasks changed, added or removed
 * @property {Set<unknown>} agents
 * @property {Set<unknown>} current ids of running tasks (a view's side set) changed
 * @property {Set<unknown>} left task ids that left the window but still exist (a range's
 *   `"left": true`): they stopped matching the view, or newer tasks pushed them out
 * @property {boolean} reset everything was replaced (a sync with `reset: true`)
 * @property {boolean} window the task rows were replaced by a view's sync (their ids are in
 *   `tasks`, old and new)
 * @property {boolean} view the view itself changed (the server's echo differs): the rows that
 *   came and went with it are not news
 * @property {boolean} counts the counts changed
 */
const noChanges = () => ({
  ...Object.fromEntries([...KEYS, ...SIDE_KEYS].map((key) => [key, new Set()])),
  left: new Set(), reset: false, window: false, view: false, counts: false,
});

/**
 * The client's copy of the database, or of its window of it: what `sync`, `event` and range
 * frames say, nothing else.
 *
 * `epoch`, `last` (the last applied sequence number) and `fp` (the fingerprint of that
 * position) are what a resubscribe sends. Without a view (protocol v1) `tasks` is the whole
 * table; with one (v2) it is the view's window, `counts` the server's counts and `current`
 * the running tasks when the view asked for them. The maps are cleared in place, so a
 * renderer may keep references to them.
 */
export class Store {
  /** @type {string|number|null} */ epoch = null;
  /** @type {number|null} */ last = null;
  /** @type {string|null} fingerprint of the position at `last` (docs/protocol.md) */ fp = null;
  /** @type {object|null} the view as the server understood it (its echo), null without one */ view = null;
  /** @type {object|null} tasks per status over the whole table and `matched`, with a view */ counts = null;
  /** @type {Map<unknown, object>} */ tasks;
  /** @type {Map<unknown, object>} */ agents;
  /** @type {Map<unknown, object>} running tasks, when the view asked for `current` */ current;

  /** @private */ #changes = noChanges();
  /** @private */ #listeners = new Set();
  /** @private */ #onError;

  /** @param {{onError?: (error: unknown) => void}} [options] where listener errors go */
  constructor({ onError = (error) => console.error(error) } = {}) {
    this.#onError = onError;
    for (const key of [...KEYS, ...SIDE_KEYS]) this[key] = new Map(); // one Map per entity and side set
  }

  /**
   * Apply a `sync` frame. `reset: true` replaces everything; `reset: false` puts the changed
   * rows on top (never to an older version) and removes the deleted ids. A view's sync (it
   * carries `view`) replaces the task rows with its window whatever `reset` says, and brings
   * the counts and the side sets. Either way the store then equals the database (or the
   * view's window of it) at `frame.seq`. A sync sent in parts is applied whole, once all its
   * parts are in (SyncParts in parts.js puts them together); one part alone throws.
   */
  applySync(frame) {
    if (isPart(frame)) {
      throw new Error(`Store.applySync: got part ${frame.part} of ${frame.parts}; stage the parts with SyncParts and apply the whole sync`);
    }
    if (frame.reset) {
      for (const key of KEYS) this[key].clear();
      this.#changes = { ...noChanges(), reset: true };
    }
    const windowed = frame.view !== undefined && frame.view !== null;
    if (windowed) this.#replaceWindow(frame);
    else if (this.view !== null) this.#dropView();
    for (const key of KEYS) {
      for (const row of frame[key] ?? []) this.#upsert(key, row);
      if (!frame.reset) for (const id of frame.deleted?.[key] ?? []) this.#remove(key, id);
    }
    this.epoch = frame.epoch ?? null;
    this.last = frame.seq ?? null;
    this.fp = stringOrNull(frame.fp);
    this.#notify();
  }

  /**
   * Apply an `event` frame, or each item of an `events` frame, in order (protocol v1). A
   * range (an `events` frame with `from`) goes to `applyRange`.
   * @returns {"applied"|"duplicate"|"gap"} "gap" means something was missed: resubscribe
   *   with `since: last`. Items after a gap are not applied (they would be gaps too).
   */
  applyEvent(frame) {
    if (frame.type === MSG.EVENTS && frame.from !== undefined) return this.applyRange(frame);
    const items = frame.type === MSG.EVENTS ? frame.items ?? [] : [frame];
    let result = "duplicate";
    for (const event of items) {
      const outcome = this.#applyOne(event);
      if (outcome === "gap") {
        if (result === "applied") this.#notify();
        return "gap";
      }
      if (outcome === "applied") result = "applied";
    }
    if (result === "applied") this.#notify();
    return result;
  }

  /**
   * Apply a range of a view (protocol v2): every change numbered `from`..`to`, of which
   * `items` are those that concern this window. Applied only when `from == last + 1`.
   * @returns {"applied"|"duplicate"|"gap"} "duplicate" when `to <= last`; "gap" when
   *   something was missed (or the range cannot be placed): resubscribe with the same view
   */
  applyRange(frame) {
    const { from, to } = frame;
    if (this.last === null || !Number.isInteger(from) || !Number.isInteger(to) || to < from) return "gap";
    if (to <= this.last) return "duplicate";
    if (from !== this.last + 1) return "gap";
    for (const item of frame.items ?? []) this.#applyItem(item);
    if (frame.counts && typeof frame.counts === "object") {
      this.counts = frame.counts;
      this.#changes.counts = true;
    }
    this.last = to;
    this.fp = stringOrNull(frame.fp);
    this.#notify(); // also for an empty range: the page's data is vouched for up to `to`
    return "applied";
  }

  /**
   * What changed since the last drain (deleted ids included), for a renderer that patches
   * only those rows. `reset: true` means redraw everything. Clears the record.
   * @returns {Changes}
   */
  drain() {
    const changes = this.#changes;
    this.#changes = noChanges();
    return changes;
  }

  /**
   * Call `fn(store)` once per applied frame (not per row). Batch rendering into
   * requestAnimationFrame in the listener. Returns a function that unsubscribes.
   */
  subscribe(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** @private A view's sync: its window replaces the task rows; counts and side sets too. */
  #replaceWindow(frame) {
    const changes = this.#changes;
    for (const id of this[WINDOWED].keys()) changes[WINDOWED].add(id); // the rows that go
    this[WINDOWED].clear();
    changes.window = true;
    if (JSON.stringify(frame.view) !== JSON.stringify(this.view)) changes.view = true;
    this.view = frame.view;
    for (const key of SIDE_KEYS) {
      for (const id of this[key].keys()) changes[key].add(id);
      this[key].clear();
      for (const row of frame[key] ?? []) this.#upsert(key, row);
    }
    this.counts = frame.counts && typeof frame.counts === "object" ? frame.counts : null;
    changes.counts = true;
  }

  /** @private A sync without a view after one with: the whole table again, no counts. */
  #dropView() {
    this.view = null;
    this.counts = null;
    this.#changes.view = true;
    this.#changes.counts = true;
    for (const key of SIDE_KEYS) {
      for (const id of this[key].keys()) this.#changes[key].add(id);
      this[key].clear();
    }
  }

  /** @private One item of a range: a task entering, changing or leaving the window; an agent
   * change (the version rule); a running task beside the window. */
  #applyItem(item) {
    const id = item?.data?.id;
    if (id === undefined || id === null) return;
    const side = SIDES[item.entity];
    const key = side ?? ENTITIES[item.entity];
    if (!key) return; // an entity this client does not keep
    if (item.op !== "delete") {
      this.#upsert(key, item.data);
    } else if (key === WINDOWED || side) {
      // Leaving the window (or the side set) carries no number: the row is simply gone from it.
      this.#remove(key, id);
      if (key === WINDOWED && item.left) this.#changes.left.add(id);
    } else {
      this.#remove(key, id, Number.isInteger(item.seq) ? item.seq : undefined);
    }
  }

  /** @private */
  #applyOne(event) {
    const seq = event?.seq;
    if (!Number.isInteger(seq)) return "duplicate"; // malformed: ignore rather than guess
    if (this.last === null || seq > this.last + 1) return "gap"; // also: nothing synced yet
    if (seq <= this.last) return "duplicate";
    const collection = ENTITIES[event.entity];
    if (collection && event.op === "delete") this.#remove(collection, event.data?.id, seq);
    else if (collection) this.#upsert(collection, event.data);
    this.last = seq;
    this.fp = stringOrNull(event.fp);
    return "applied";
  }

  /** @private A row never goes back to an older version. */
  #upsert(collection, row) {
    if (row?.id === undefined || row.id === null) return;
    const current = this[collection].get(row.id);
    if (current && current.version > row.version) return;
    this[collection].set(row.id, row);
    this.#changes[collection].add(row.id);
  }

  /** @private `seq` (when known) guards against an old delete removing a newer row. */
  #remove(collection, id, seq) {
    const current = this[collection].get(id);
    if (current === undefined || (seq !== undefined && current.version > seq)) return;
    this[collection].delete(id);
    this.#changes[collection].add(id);
  }

  /** @private One bad listener must not stop the others or the connection. */
  #notify() {
    for (const fn of [...this.#listeners]) {
      try {
        fn(this);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}

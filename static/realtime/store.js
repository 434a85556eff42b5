import { ENTITIES, MSG } from "./constants.js";
import { isPart } from "./parts.js";

// Event `entity` -> the Map that holds it (constants.js). Unknown entities still advance
// `last`, because the sequence is shared by every entity and the protocol may grow new ones.
const KEYS = Object.values(ENTITIES);

const noChanges = () => ({ ...Object.fromEntries(KEYS.map((key) => [key, new Set()])), reset: false });

/**
 * The client's copy of the database: what `sync` and `event` frames say, nothing else.
 *
 * `epoch` and `last` (the last applied sequence number) are what a resubscribe sends.
 * The maps are cleared in place on a reset, so a renderer may keep references to them.
 */
export class Store {
  /** @type {string|number|null} */ epoch = null;
  /** @type {number|null} */ last = null;
  /** @type {Map<unknown, object>} */ tasks;
  /** @type {Map<unknown, object>} */ agents;

  /** @private */ #changes = noChanges();
  /** @private */ #listeners = new Set();
  /** @private */ #onError;

  /** @param {{onError?: (error: unknown) => void}} [options] where listener errors go */
  constructor({ onError = (error) => console.error(error) } = {}) {
    this.#onError = onError;
    for (const key of KEYS) this[key] = new Map(); // one Map per entity of the table
  }

  /**
   * Apply a `sync` frame. `reset: true` replaces everything; `reset: false` puts the changed
   * rows on top (never to an older version) and removes the deleted ids. Either way the store
   * then equals the database at `frame.seq`. A sync sent in parts is applied whole, once
   * all its parts are in (SyncParts in parts.js puts them together); one part alone throws.
   */
  applySync(frame) {
    if (isPart(frame)) {
      throw new Error(`Store.applySync: got part ${frame.part} of ${frame.parts}; stage the parts with SyncParts and apply the whole sync`);
    }
    if (frame.reset) {
      for (const key of KEYS) this[key].clear();
      this.#changes = { ...noChanges(), reset: true };
    }
    for (const key of KEYS) {
      for (const row of frame[key] ?? []) this.#upsert(key, row);
      if (!frame.reset) for (const id of frame.deleted?.[key] ?? []) this.#remove(key, id);
    }
    this.epoch = frame.epoch ?? null;
    this.last = frame.seq ?? null;
    this.#notify();
  }

  /**
   * Apply an `event` frame, or each item of an `events` frame, in order.
   * @returns {"applied"|"duplicate"|"gap"} "gap" means something was missed: resubscribe
   *   with `since: last`. Items after a gap are not applied (they would be gaps too).
   */
  applyEvent(frame) {
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
   * Ids changed since the last drain (deleted ids included), for a renderer that patches only
   * those rows. `reset: true` means redraw everything. Clears the record.
   * @returns {{tasks: Set<unknown>, agents: Set<unknown>, reset: boolean}}
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

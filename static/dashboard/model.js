// What the page shows: a snapshot of the Store, taken at each render, plus what is derived
// from it (the window's order, each agent's running task). The Store runs ahead of it; while
// the person has paused, the page keeps drawing from this snapshot: rows, counts, agents.
//
// With a view (protocol v2) the Store holds the server's window of the tasks, newest first
// (id descending), its counts over the whole table, and the running tasks beside the window
// (`current`); the page counts nothing itself.
import { parseTime } from "./format.js";

/** Changed ids waiting to be rendered, gathered from `Store.drain()`. */
export class Pending {
  tasks = new Set();
  agents = new Set();
  current = new Set();
  left = new Set();
  reset = false;
  window = false;
  view = false;
  counts = false;

  /** Add one drain's record. */
  absorb(changes) {
    for (const flag of ["reset", "window", "view", "counts"]) if (changes[flag]) this[flag] = true;
    for (const key of ["tasks", "agents", "current", "left"]) for (const id of changes[key] ?? []) this[key].add(id);
  }

  get empty() {
    return !this.reset && !this.window && !this.counts && this.tasks.size === 0 && this.agents.size === 0 && this.current.size === 0;
  }

  /** Hand over the record and start a new one. */
  take() {
    const taken = {
      tasks: this.tasks, agents: this.agents, current: this.current, left: this.left,
      reset: this.reset, window: this.window, view: this.view, counts: this.counts,
    };
    Object.assign(this, {
      tasks: new Set(), agents: new Set(), current: new Set(), left: new Set(),
      reset: false, window: false, view: false, counts: false,
    });
    return taken;
  }
}

// Newest first: id descending, the window's own order (docs/protocol.md, "Views").
const newestFirst = (a, b) => (b > a ? 1 : b < a ? -1 : 0);

/**
 * @typedef {object} Change
 * @property {unknown} id
 * @property {object|undefined} before the row as last shown (undefined: it was not shown)
 * @property {object|undefined} after the row now (undefined: it is not shown any more)
 * @property {"new"|"matched"|null} [entered] a task that came into the window: "new" (an id
 *   never seen, so a task just created), "matched" (it started to match the view), null (it
 *   moved up from below the window as another left: not news)
 * @property {"stopped"|"pushed"|null} [left] a task that left the window but still exists:
 *   "stopped" (it no longer matches, or, when a sync replaced the window, it may also have
 *   been deleted), "pushed" (newer tasks pushed it out at the bottom: not news); null when it
 *   was deleted
 */

export class Model {
  /** @type {Map<unknown, object>} the window's tasks */ tasks = new Map();
  /** @type {Map<unknown, object>} */ agents = new Map();
  /** @type {Map<unknown, object>} running tasks beside the window (the view's `current`) */ current = new Map();
  /** Task ids of the window, newest first. */ order = [];
  /** The server's counts (per status over the whole table, and `matched`) as shown, or null. */ counts = null;
  /** The view as the server understood it, as shown; null without one (protocol v1). */ view = null;
  /** False until the first merge: that one fills the page and is not news. */ hydrated = false;

  /** @private agent id -> Set of ids of its running tasks */ #running = new Map();
  /** @private the highest task id ever seen: a task above it is a new one */ #highest = -Infinity;

  /**
   * Take the changed rows from `store` into the snapshot.
   * @param {import("../realtime/store.js").Store} store
   * @param {ReturnType<Pending["take"]>} changes
   * @returns {{tasks: Change[], agents: Change[], current: Change[], first: boolean,
   *   reordered: boolean, viewChanged: boolean, countsChanged: boolean}}
   */
  merge(store, changes) {
    const first = !this.hydrated;
    const full = changes.reset;
    const windowed = store.view !== null && store.view !== undefined;
    const oldMin = this.order.length ? this.order.at(-1) : Infinity;
    const wasFull = this.order.length >= (this.view?.limit ?? Infinity); // rows existed below it
    const highest = this.#highest;
    const taskIds = full || changes.window ? union(store.tasks.keys(), this.tasks.keys()) : changes.tasks;
    const agentIds = full ? union(store.agents.keys(), this.agents.keys()) : changes.agents;
    const currentIds = full || changes.window ? union(store.current.keys(), this.current.keys()) : changes.current;

    const tasks = [];
    const added = [];
    const removed = new Set();
    for (const id of taskIds) {
      const before = this.tasks.get(id);
      const after = store.tasks.get(id);
      if (before === after || (before && after && before.version === after.version)) continue;
      if (after) this.tasks.set(id, after);
      else this.tasks.delete(id);
      if (!windowed) this.#reindex(before, after); // v1: the whole table, running tasks among it
      if (!before) added.push(id);
      if (!after) removed.add(id);
      tasks.push({ id, before, after });
    }
    const agents = this.#mergeMap(this.agents, store.agents, agentIds);
    const current = windowed ? this.#mergeMap(this.current, store.current, currentIds) : [];
    if (windowed) for (const { before, after } of current) this.#reindex(before, after);
    else if (this.current.size) this.#dropCurrent();

    const reordered = added.length > 0 || removed.size > 0;
    if (reordered) this.#reorder(added, removed);
    // A view's sync that replaced the window cannot tell a deletion from a row that left:
    // every row it dropped is taken as having left.
    const left = windowed && changes.window ? null : changes.left;
    this.#classify(tasks, left, { windowed, oldMin, wasFull, highest });
    for (const { id } of [...tasks, ...current]) if (id > this.#highest) this.#highest = id;
    const viewChanged = first || changes.view || changes.reset;
    const countsChanged = this.counts !== store.counts;
    this.counts = store.counts;
    this.view = store.view;
    this.hydrated = true;
    return { tasks, agents, current, first, reordered, viewChanged, countsChanged };
  }

  /** Ids of changed rows between the snapshot and `store` (what a paused page holds back). */
  heldCount(store, pending) {
    if (!pending.reset && !pending.window) return pending.tasks.size + pending.agents.size;
    return differing(this.tasks, store.tasks) + differing(this.agents, store.agents);
  }

  /**
   * The running task of an agent, or null. Should there be several, the newest started and,
   * on equal start times, the highest id: the same order as tasks/domain.py CURRENT_ORDER.
   */
  currentTask(agentId) {
    const ids = this.#running.get(agentId);
    if (!ids || ids.size === 0) return null;
    const source = this.view ? this.current : this.tasks;
    let best = null;
    for (const id of ids) {
      const row = source.get(id);
      if (!row) continue;
      if (!best) { best = row; continue; }
      const started = parseTime(row.started_at) ?? 0;
      const bestStarted = parseTime(best.started_at) ?? 0;
      if (started > bestStarted || (started === bestStarted && row.id > best.id)) best = row;
    }
    return best;
  }

  /** @private Copy the changed entries of `live` into `shown`; the changes, as Change. */
  #mergeMap(shown, live, ids) {
    const changes = [];
    for (const id of ids) {
      const before = shown.get(id);
      const after = live.get(id);
      if (before === after || (before && after && before.version === after.version)) continue;
      if (after) shown.set(id, after);
      else shown.delete(id);
      changes.push({ id, before, after });
    }
    return changes;
  }

  /**
   * @private Why each task came or went: a new task, one that started or stopped matching,
   * or one that only moved across the window's bottom edge (not news).
   */
  #classify(changes, left, { windowed, oldMin, wasFull, highest }) {
    const newMin = this.order.length ? this.order.at(-1) : -Infinity;
    for (const change of changes) {
      const { id, before, after } = change;
      if (!before && after) {
        if (!windowed || id > highest) change.entered = "new";
        else change.entered = id < oldMin && wasFull ? null : "matched";
      } else if (before && !after) {
        const gone = left === null || left?.has(id); // null: the window was replaced whole
        change.left = !gone ? null : id < newMin ? "pushed" : "stopped";
      }
    }
  }

  /** @private Keep the running tasks indexed by agent. */
  #reindex(before, after) {
    if (before) {
      const ids = this.#running.get(before.agent);
      if (ids) {
        ids.delete(before.id);
        if (ids.size === 0) this.#running.delete(before.agent);
      }
    }
    if (after && after.status === "running" && after.agent !== null && after.agent !== undefined) {
      let ids = this.#running.get(after.agent);
      if (!ids) this.#running.set(after.agent, (ids = new Set()));
      ids.add(after.id);
    }
  }

  /** @private */
  #dropCurrent() {
    this.current.clear();
    this.#running.clear();
    for (const row of this.tasks.values()) this.#reindex(undefined, row);
  }

  /** @private Keep `order` sorted: splice a few in, or sort again after many. */
  #reorder(added, removed) {
    let order = removed.size > 0 ? this.order.filter((id) => !removed.has(id)) : this.order;
    if (added.length > 64) {
      order = [...this.tasks.keys()].sort(newestFirst);
    } else {
      if (order === this.order) order = order.slice();
      for (const id of added) order.splice(insertionPoint(order, id), 0, id);
    }
    this.order = order;
  }
}

function union(a, b) {
  const ids = new Set(a);
  for (const id of b) ids.add(id);
  return ids;
}

function differing(shown, live) {
  let n = 0;
  for (const [id, row] of live) if (shown.get(id)?.version !== row.version) n += 1;
  for (const id of shown.keys()) if (!live.has(id)) n += 1;
  return n;
}

function insertionPoint(sorted, id) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (newestFirst(sorted[mid], id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// What the page shows: a snapshot of the Store, taken at each render, plus what is derived
// from it (order, counts by status, each agent's running task). The Store runs ahead of it;
// while the person has paused, the page keeps drawing from this snapshot.
import { TASK_STATUS, parseTime } from "./format.js";

/** Changed ids waiting to be rendered, gathered from `Store.drain()`. */
export class Pending {
  tasks = new Set();
  agents = new Set();
  reset = false;

  /** Add one drain's record. */
  absorb(changes) {
    if (changes.reset) this.reset = true;
    for (const id of changes.tasks) this.tasks.add(id);
    for (const id of changes.agents) this.agents.add(id);
  }

  get empty() {
    return !this.reset && this.tasks.size === 0 && this.agents.size === 0;
  }

  /** Hand over the record and start a new one. */
  take() {
    const taken = { tasks: this.tasks, agents: this.agents, reset: this.reset };
    this.tasks = new Set();
    this.agents = new Set();
    this.reset = false;
    return taken;
  }
}

const zeroCounts = () => Object.fromEntries(Object.keys(TASK_STATUS).map((s) => [s, 0]));

// Newest first: created_at descending, then id descending. Updates never move a row.
const byNewest = (created) => (a, b) => (created.get(b) ?? 0) - (created.get(a) ?? 0) || (b > a ? 1 : b < a ? -1 : 0);

/**
 * @typedef {object} Change
 * @property {unknown} id
 * @property {object|undefined} before the row as last shown (undefined: new)
 * @property {object|undefined} after the row now (undefined: deleted)
 */

export class Model {
  /** @type {Map<unknown, object>} */ tasks = new Map();
  /** @type {Map<unknown, object>} */ agents = new Map();
  /** Task ids, newest first. */ order = [];
  /** Tasks per status. */ counts = zeroCounts();
  /** False until the first merge: that one fills the page and is not news. */ hydrated = false;

  /** @private id -> created ms */ #created = new Map();
  /** @private agent id -> Set of ids of its running tasks */ #running = new Map();

  /**
   * Take the changed rows from `store` into the snapshot.
   * @param {{tasks: Map, agents: Map}} store
   * @param {{tasks: Set, agents: Set, reset: boolean}} changes from Pending.take()
   * @returns {{tasks: Change[], agents: Change[], first: boolean, reordered: boolean}}
   */
  merge(store, changes) {
    const first = !this.hydrated;
    const taskIds = changes.reset ? union(store.tasks.keys(), this.tasks.keys()) : changes.tasks;
    const agentIds = changes.reset ? union(store.agents.keys(), this.agents.keys()) : changes.agents;
    const tasks = [];
    const added = [];
    const removed = new Set();
    for (const id of taskIds) {
      const before = this.tasks.get(id);
      const after = store.tasks.get(id);
      if (before === after || (before && after && before.version === after.version)) continue;
      this.#unindex(before);
      this.#index(after);
      if (after) this.tasks.set(id, after);
      else this.tasks.delete(id);
      if (!before) added.push(id);
      if (!after) removed.add(id);
      tasks.push({ id, before, after });
    }
    const agents = [];
    for (const id of agentIds) {
      const before = this.agents.get(id);
      const after = store.agents.get(id);
      if (before === after || (before && after && before.version === after.version)) continue;
      if (after) this.agents.set(id, after);
      else this.agents.delete(id);
      agents.push({ id, before, after });
    }
    const reordered = added.length > 0 || removed.size > 0;
    if (reordered) this.#reorder(added, removed);
    this.hydrated = true;
    return { tasks, agents, first, reordered };
  }

  /** Ids of changed rows between the snapshot and `store` (what a paused page holds back). */
  heldCount(store, pending) {
    if (!pending.reset) return pending.tasks.size + pending.agents.size;
    return differing(this.tasks, store.tasks) + differing(this.agents, store.agents);
  }

  /**
   * The running task of an agent, or null. Should there be several, the newest started and,
   * on equal start times, the highest id: the same order as tasks/domain.py CURRENT_ORDER.
   */
  currentTask(agentId) {
    const ids = this.#running.get(agentId);
    if (!ids || ids.size === 0) return null;
    let best = null;
    for (const id of ids) {
      const row = this.tasks.get(id);
      if (!best) { best = row; continue; }
      const started = parseTime(row.started_at) ?? 0;
      const bestStarted = parseTime(best.started_at) ?? 0;
      if (started > bestStarted || (started === bestStarted && row.id > best.id)) best = row;
    }
    return best;
  }

  /** @private */
  #index(row) {
    if (!row) return;
    if (row.status in this.counts) this.counts[row.status] += 1;
    if (!this.#created.has(row.id)) this.#created.set(row.id, parseTime(row.created_at) ?? 0);
    if (row.status === "running" && row.agent !== null && row.agent !== undefined) {
      let ids = this.#running.get(row.agent);
      if (!ids) this.#running.set(row.agent, (ids = new Set()));
      ids.add(row.id);
    }
  }

  /** @private */
  #unindex(row) {
    if (!row) return;
    if (row.status in this.counts) this.counts[row.status] -= 1;
    const ids = this.#running.get(row.agent);
    if (ids) {
      ids.delete(row.id);
      if (ids.size === 0) this.#running.delete(row.agent);
    }
  }

  /** @private Keep `order` sorted: splice a few in, or sort again after many. */
  #reorder(added, removed) {
    for (const id of removed) this.#created.delete(id);
    const cmp = byNewest(this.#created);
    let order = removed.size > 0 ? this.order.filter((id) => !removed.has(id)) : this.order;
    if (added.length > 64) {
      order = [...this.tasks.keys()].sort(cmp);
    } else {
      if (order === this.order) order = order.slice();
      for (const id of added) order.splice(insertionPoint(order, id, cmp), 0, id);
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

function insertionPoint(sorted, id, cmp) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(sorted[mid], id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

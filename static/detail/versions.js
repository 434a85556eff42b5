// What version of a detail page's object the stream shows: the number a Timeline compares
// with the version the page reflects. Pure functions of the Store, for node tests.

/** Sent for an object the stream no longer has: fetch once, to learn it was deleted. */
export const GONE = Number.MAX_SAFE_INTEGER;

/**
 * The version of task `id` in the store; GONE when a synced store lacks it (deleted) and the
 * page does not know that yet; null before the first sync.
 */
export function taskVersion(store, id, timeline) {
  if (store.last === null) return null;
  const row = store.tasks.get(id);
  if (row) return row.version;
  return timeline.deleted ? null : GONE;
}

/**
 * An agent page shows the agent and its tasks, so its version is the highest of the agent's
 * row and its tasks' rows (the server's `version`, tasks/pages.py). Kept incrementally from
 * the store's changed ids: a task that leaves the agent, or is deleted, still counts once.
 */
export class AgentVersion {
  /** @private */ #mine = new Set();
  /** @private */ #version = 0;

  constructor(id) {
    this.id = id;
  }

  /** @returns {number|null} the version after this frame, or null when nothing of ours changed */
  update(store) {
    const changed = store.drain();
    let touched = changed.reset;
    const agent = store.agents.get(this.id);
    if (changed.agents.has(this.id)) {
      this.#version = agent ? Math.max(this.#version, agent.version) : GONE;
      touched = true;
    }
    const ids = changed.reset ? store.tasks.keys() : changed.tasks;
    for (const taskId of ids) {
      const row = store.tasks.get(taskId);
      const ours = row?.agent === this.id;
      if (!ours && !this.#mine.has(taskId)) continue;
      touched = true;
      if (row) this.#version = Math.max(this.#version, row.version);
      else this.#version = GONE; // deleted: its number is not in the store; fetch to see
      if (ours) this.#mine.add(taskId);
      else this.#mine.delete(taskId);
    }
    if (!touched) return null;
    const version = this.#version;
    if (version === GONE) this.#version = 0; // asked once; later changes count from their own numbers
    return version;
  }
}

// Cancel and requeue, from a row or for a selection, through the operator API
// (POST /api/tasks/<id>/cancel/ and /requeue/, docs/api.md). The rules and the bookkeeping
// are pure; actions-ui.js draws them. The page never changes a row itself: a row shows the
// action as pending until the change comes back through the stream.

import { TASK_ACTIONS } from "./lifecycle.js";

/** The dashboard's actions (its rows and its selection), with the statuses each applies to and
 * their words: the server's (tasks/lifecycle.py, through lifecycle.js). */
export const ACTIONS = Object.freeze(Object.fromEntries(
  ["cancel", "requeue"].filter((name) => name in TASK_ACTIONS).map((name) => [name, TASK_ACTIONS[name]])));

/** Does `action` apply to a task in `status`? */
export const allows = (action, status) => ACTIONS[action].from.includes(status);

/** The action a row offers for its status, or null (a succeeded task has none). */
export const rowAction = (status) => Object.keys(ACTIONS).find((action) => allows(action, status)) ?? null;

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * What a confirmation shows, frozen when it opens: the chosen tasks the action applies to,
 * and those it does not (with their status then).
 * @param {string} action
 * @param {Iterable<unknown>} ids the selection (or one row)
 * @param {(id: unknown) => object|undefined} rowOf the page's current row
 */
export function plan(action, ids, rowOf) {
  const eligible = [];
  const skipped = [];
  for (const id of ids) {
    const row = rowOf(id);
    if (!row) continue; // deleted since it was selected
    const item = { id, status: row.status, version: row.version, title: String(row.title ?? "") };
    (allows(action, row.status) ? eligible : skipped).push(item);
  }
  return { action, eligible, skipped };
}

/** The words of a confirmation for `planned` (from plan()). */
export function confirmation(planned) {
  const { label, verb, verbed } = ACTIONS[planned.action];
  const n = planned.eligible.length;
  const title = n === 0 ? `Nothing to ${verb}` : `${label} ${plural(n, "task")}?`;
  const parts = [];
  if (n > 0) parts.push(`${plural(n, "task")} will be asked to ${verb}.`);
  if (planned.skipped.length > 0) {
    const statuses = [...new Set(planned.skipped.map((item) => item.status))].join(", ");
    parts.push(`${plural(planned.skipped.length, "selected task")} cannot be ${verbed} (${statuses}) and will be left as ${planned.skipped.length === 1 ? "it is" : "they are"}.`);
  }
  return { title, text: parts.join(" "), button: n === 0 ? "" : `${label} ${plural(n, "task")}` };
}

/**
 * At confirm: the planned tasks whose status is still the one the dialog showed are sent;
 * the others changed meanwhile and are reported, not acted on.
 */
export function recheck(planned, rowOf) {
  const send = [];
  const changed = [];
  for (const item of planned.eligible) {
    const row = rowOf(item.id);
    if (row && row.status === item.status) send.push({ ...item, version: row.version });
    else changed.push({ ...item, now: row ? row.status : "deleted" });
  }
  return { send, changed };
}

/**
 * POST `action` for each item, at most `concurrency` at a time.
 * @param {(id: unknown, action: string) => Promise<{ok: boolean, status: number, body: object|null}>} post
 * @returns {Promise<Array<{id: unknown, ok: boolean, version?: number, error?: string}>>} in item order
 */
export async function sendAll(action, items, post, { concurrency = 4, onResult = () => {} } = {}) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      const { id } = items[i];
      let result;
      try {
        const answer = await post(id, action);
        result = answer.ok
          ? { id, ok: true, version: answer.body?.version }
          : { id, ok: false, error: errorText(answer) };
      } catch (error) {
        result = { id, ok: false, error: `not sent (${error?.message ?? error})` };
      }
      results[i] = result;
      onResult(result);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** The API's own words for a refusal (DRF: `detail`, or lists of messages per field). */
export function errorText({ status, body }) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && typeof body === "object") {
    const words = Object.values(body).flat().filter((v) => typeof v === "string");
    if (words.length) return words.join(" ");
  }
  return `HTTP ${status}`;
}

/** One line for the result of a confirmed action. */
export function summary(action, { results, changed }) {
  const { done, verb } = ACTIONS[action];
  const ok = results.filter((r) => r.ok).length;
  const failed = results.filter((r) => !r.ok);
  const parts = [`${done} ${ok} of ${plural(results.length + changed.length, "task")}.`];
  if (changed.length) {
    const now = [...new Set(changed.map((c) => c.now))].join(", ");
    parts.push(`${plural(changed.length, "task")} changed before it could be sent (now ${now}) and ${changed.length === 1 ? "was" : "were"} left alone.`);
  }
  if (failed.length) parts.push(`The server refused to ${verb} ${failed.length}: ${failed[0].error}`);
  return parts.join(" ");
}

/**
 * The actions on their way, per task id, until the stream shows their result: the row's
 * version reaches the one the API answered with or, before that answer, the row is in the
 * action's target status at a newer version than when it was sent.
 */
export class PendingActions {
  /** @type {Map<unknown, {action: string, from: number, version: number|null}>} */ byId = new Map();

  /** Called when a request is sent; `from` is the row's version then. */
  start(id, action, from) {
    this.byId.set(id, { action, from, version: null });
  }

  /** The API answered with the task at `version`. */
  answered(id, version) {
    const entry = this.byId.get(id);
    if (entry && typeof version === "number") entry.version = version;
  }

  /** The request failed: nothing is on its way. */
  drop(id) {
    this.byId.delete(id);
  }

  /** The action pending on `id`, or null. */
  get(id) {
    return this.byId.get(id)?.action ?? null;
  }

  /** Forget the entries whose result the page's rows show; returns their ids. */
  settle(rowOf) {
    const settled = [];
    for (const [id, entry] of this.byId) {
      const row = rowOf(id);
      const arrived = !row
        || (entry.version !== null ? row.version >= entry.version
          : row.version > entry.from && row.status === ACTIONS[entry.action].to);
      if (arrived) settled.push(id);
    }
    for (const id of settled) this.byId.delete(id);
    return settled;
  }
}

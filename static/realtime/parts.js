// A large `sync` arrives as n frames, each with `"part": k, "parts": n` and the same epoch,
// seq and reset; together they are one sync (docs/protocol.md). SyncParts stages them and
// hands over the whole sync once the last part is in, so the Store only ever sees whole syncs
// and `epoch`/`last` move only then.

import { ENTITIES, SIDES } from "./constants.js";

const FIELDS = ["epoch", "seq", "reset", "parts"];
const KEYS = Object.values(ENTITIES); // "tasks", "agents": rows and deletions of each entity
const SIDE_KEYS = Object.values(SIDES); // "current": a view's side sets, rows only

/** Is `frame` one part of a sync sent in several? (`parts: 1` is a whole sync.) */
export const isPart = (frame) => frame?.part !== undefined || (frame?.parts !== undefined && frame.parts !== 1);

/**
 * @typedef {object} Outcome
 * @property {"whole"|"staged"|"stray"} status "whole": `sync` is complete, apply it;
 *   "staged": a part was kept, more are due; "stray": the frame was not used
 * @property {object} [sync] the whole sync (rows and deletions of every part), without
 *   `part`/`parts`
 * @property {string} [discarded] why the parts staged before this frame were dropped
 * @property {string} [why] why a stray frame was not used
 */

export class SyncParts {
  /** @private */ #staged = null; // {head, first, next, rows: {key: []}, deleted: {key: []}}

  /** True while some parts of a sync are in and the last one is not. */
  get staging() {
    return this.#staged !== null;
  }

  /** Drop whatever is staged (a new socket: the rest of those parts will never come). */
  clear() {
    this.#staged = null;
  }

  /**
   * Take one `sync` frame. A frame that does not continue the staged sync (another epoch,
   * seq, reset or part count, or a part out of order) discards the staging; the frame is
   * then taken on its own: a whole sync is handed over, a first part starts a new staging,
   * any other part is a stray.
   * @returns {Outcome}
   */
  add(frame) {
    let discarded;
    if (this.#staged) {
      const why = this.#mismatch(frame);
      if (!why) return this.#keep(frame);
      discarded = why;
      this.#staged = null;
    }
    const outcome = this.#begin(frame);
    return discarded ? { ...outcome, discarded } : outcome;
  }

  /** @private A frame with no staging: whole, a first part, or a stray. */
  #begin(frame) {
    if (!isPart(frame)) return { status: "whole", sync: frame };
    const { part, parts } = frame;
    if (!Number.isInteger(parts) || parts < 1 || !Number.isInteger(part) || part < 1 || part > parts) {
      return { status: "stray", why: `part ${part} of ${parts} is not a part number` };
    }
    if (part !== 1) return { status: "stray", why: `part ${part} of ${parts} without part 1` };
    if (parts === 1) return { status: "whole", sync: strip(frame) };
    const head = Object.fromEntries(FIELDS.map((name) => [name, frame[name]]));
    const lists = (keys) => Object.fromEntries(keys.map((key) => [key, []]));
    // A side set travels only when the view asked for it: staged when the first part has it.
    const sides = SIDE_KEYS.filter((key) => frame[key] !== undefined);
    this.#staged = { head, first: frame, next: 1, rows: lists([...KEYS, ...sides]), deleted: lists(KEYS) };
    return this.#keep(frame);
  }

  /** @private Why `frame` cannot be the next part of the staged sync, or "" when it can. */
  #mismatch(frame) {
    const { head, next } = this.#staged;
    if (!isPart(frame)) return "a whole sync arrived";
    for (const name of FIELDS) {
      if (frame[name] !== head[name]) return `${name} ${JSON.stringify(frame[name])} != ${JSON.stringify(head[name])}`;
    }
    if (frame.part !== next) return `part ${frame.part} arrived, part ${next} was due`;
    return "";
  }

  /** @private Stage the next part; hand over the whole sync after the last. */
  #keep(frame) {
    const staged = this.#staged;
    const lists = listsOf(frame, Object.keys(staged.rows));
    if (lists === null) {
      this.#staged = null;
      return { status: "stray", why: `part ${frame.part} of ${frame.parts} has a field that is not a list` };
    }
    // not push(...list): a long list overflows the stack
    for (const [key, list] of Object.entries(lists.rows)) for (const item of list) staged.rows[key].push(item);
    for (const [key, list] of Object.entries(lists.deleted)) for (const item of list) staged.deleted[key].push(item);
    staged.next += 1;
    if (frame.part < staged.head.parts) return { status: "staged" };
    this.#staged = null;
    return { status: "whole", sync: { ...strip(staged.first), ...staged.rows, deleted: staged.deleted } };
  }
}

/**
 * {rows, deleted} of a part: rows per key of `rowKeys` (entities and the staged side sets),
 * deletions per entity key (absent: empty), or null if one is not a list.
 */
function listsOf(frame, rowKeys) {
  const rows = Object.fromEntries(rowKeys.map((key) => [key, frame[key] ?? []]));
  const deleted = Object.fromEntries(KEYS.map((key) => [key, frame.deleted?.[key] ?? []]));
  const all = [...Object.values(rows), ...Object.values(deleted)];
  return all.every(Array.isArray) ? { rows, deleted } : null;
}

function strip(frame) {
  const { part, parts, ...rest } = frame;
  return rest;
}

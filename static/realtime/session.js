// One socket's subscription: the `subscribe` frame (the store's position and the view), the
// rule of one subscribe outstanding, the parts of its sync, and the deadline by which that
// sync must be whole. The Connection owns the socket and the timer; this owns what was asked.
import { MSG } from "./constants.js";
import { SyncParts } from "./parts.js";

/**
 * @typedef {object} Taken what became of a `sync` frame
 * @property {"whole"|"staged"|"stray"|"again"} status "whole": apply `sync`; "staged": a
 *   part was kept, more are due; "stray": not used; "again": a whole sync for a view no longer
 *   wanted, dropped (the store stays where it was): subscribe again now
 * @property {object} [sync]
 * @property {string} [discarded] why parts staged before this frame were dropped
 * @property {string} [why] why a stray was not used
 */

export class SyncSession {
  /** @private */ #parts = new SyncParts(); // parts of a sync in, its last not yet
  /** @private */ #out = false; // a subscribe is out and its (whole) sync has not arrived
  /** @private */ #deadline = null; // the sync (or its next part) is due by then
  /** @private */ #view; // the view to subscribe with; null: the whole table (protocol v1)
  /** @private */ #changing = false; // a new view was asked for: the old one's frames are not applied
  /** @private */ #again = false; // the view changed while a subscribe was out: ask again once answered
  /** @private */ #timeout;

  /**
   * @param {object} o
   * @param {object|null} [o.view] docs/protocol.md, "Views"
   * @param {number} o.timeout ms a sync (or its next part) may take
   */
  constructor({ view = null, timeout }) {
    this.#view = view;
    this.#timeout = timeout;
  }

  /** The view subscribed to (or to be), null for the whole table. */
  get view() {
    return this.#view;
  }

  /** Clock ms by which the sync (or its next part) must arrive, or null. */
  get deadline() {
    return this.#deadline;
  }

  /** Some parts of a sync are in and the last one is not. */
  get staging() {
    return this.#parts.staging;
  }

  /** A subscribe is out or a sync's parts are arriving: no other subscribe may go now. */
  get busy() {
    return this.#out || this.#parts.staging;
  }

  /** A new view was asked for and its sync is not in: ranges and events are of the old one. */
  get changing() {
    return this.#changing;
  }

  /** A new socket: nothing asked, nothing staged; its first sync is due by now + timeout. */
  begin(now) {
    this.#clear();
    this.#deadline = now + this.#timeout;
  }

  /** The socket is gone: the rest of any parts will never come, the store stays where it was. */
  end() {
    this.#clear();
    this.#deadline = null;
  }

  /** The `subscribe` frame for the store's position, with the view when there is one. */
  frame(store) {
    const frame = { type: MSG.SUBSCRIBE, since: store.last, epoch: store.epoch };
    if (store.fp) frame.fp = store.fp;
    if (this.#view) frame.view = this.#view;
    return frame;
  }

  /**
   * The subscribe went out. `resync`: on a link already live, so its sync is due by now +
   * timeout (a resync unanswered that long would leave a gap open forever).
   */
  sent(now, resync) {
    this.#out = true;
    this.#again = false;
    if (resync) this.#deadline = now + this.#timeout;
  }

  /**
   * Subscribe with `view` from now on (null: the whole table).
   * @returns {boolean} true when a subscribe may go now; false when one is out (it is sent
   *   once that one is answered)
   */
  setView(view) {
    this.#view = view;
    this.#changing = true;
    if (!this.busy) return true;
    this.#again = true;
    return false;
  }

  /**
   * Take a `sync` frame (whole, or one part). A part that does not fit the staged ones drops
   * them (see parts.js); the sync deadline then decides.
   * @returns {Taken}
   */
  take(message, now) {
    const outcome = this.#parts.add(message);
    if (outcome.status === "staged") this.#deadline = now + this.#timeout; // each part gives the rest one more timeout
    if (outcome.status !== "whole" || !this.#again) return outcome;
    // The answer for the view asked for before: dropped. The new view's subscribe may go now.
    this.#out = false;
    this.#again = false;
    return { ...outcome, status: "again", sync: undefined };
  }

  /** A whole sync was applied: the subscribe is answered, the new view (if any) is live. */
  answered() {
    this.#out = false;
    this.#changing = false;
    this.#deadline = null;
  }

  /**
   * The server refused the view (`bad_view`): nothing was built. Go back to `fallback` (the
   * view the store holds, as the server echoed it), which keeps streaming.
   */
  refused(fallback) {
    this.#view = fallback;
    this.answered();
    this.#again = false;
  }

  /** @private */
  #clear() {
    this.#out = false;
    this.#changing = false;
    this.#again = false;
    this.#parts.clear();
  }
}

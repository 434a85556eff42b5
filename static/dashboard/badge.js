// The connection pill: what the Connection's status means to a person, what they can do
// about it, and one polite announcement per real change for screen readers.
import { clockTime, secondsUntil } from "./format.js";

/**
 * @typedef {object} BadgeView
 * @property {string} state the connection state, for data-connection
 * @property {string} text the pill's words
 * @property {string} rtt round-trip time, or ""
 * @property {boolean} retry show "Retry now"
 * @property {boolean} signIn show the sign-in link
 * @property {boolean} reload show "Reload"
 * @property {string} detail the server's own words for the close, or ""
 * @property {string} announce what a screen reader hears (changes only when the meaning does)
 */

/**
 * @param {import("../realtime/connection.js").Status} status
 * @param {number} now
 * @param {{paused?: boolean}} [page] `paused`: the person holds the page still (its rows,
 *   counts, agents, feed and chart): a live link then says "Paused", not "Live"
 * @returns {BadgeView}
 */
export function describeConnection(status, now, { paused = false } = {}) {
  const view = { state: status.state, text: "", rtt: "", retry: false, signIn: false, reload: false, detail: "", announce: "" };
  const described = status.state === "open" && paused ? describePaused(view, status) : describeState(view, status, now);
  const detail = described.state === "waiting" || described.state === "stopped" ? status.message ?? "" : "";
  if (!detail) return described;
  const announce = described.announce ? `${described.announce} The server said: ${detail}` : "";
  return { ...described, detail, announce };
}

function describePaused(view, status) {
  return {
    ...view, text: "Paused", rtt: status.rtt === null ? "" : `${Math.round(status.rtt)} ms`,
    announce: "Paused: the page holds its data; changes wait until you resume.",
  };
}

function describeState(view, status, now) {
  const asOf = status.lastMessageAt ? ` · data as of ${clockTime(status.lastMessageAt)}` : "";
  switch (status.state) {
    case "open":
      return { ...view, text: "Live", rtt: status.rtt === null ? "" : `${Math.round(status.rtt)} ms`, announce: "Live: updates are on." };
    case "connecting":
      if (status.attempt > 0 || status.lastMessageAt) {
        return { ...view, text: "Reconnecting…", announce: "Connection lost. Reconnecting." };
      }
      return { ...view, text: "Connecting…", announce: "" };
    case "waiting":
      if (status.reason === "too_many_dashboards") {
        return {
          ...view, text: `Too many open dashboards · retrying in ${secondsUntil(status.retryAt, now)} s`, retry: true,
          announce: "Too many dashboards are open for this account. Close some; this one keeps retrying.",
        };
      }
      return {
        ...view, text: `Reconnecting in ${secondsUntil(status.retryAt, now)} s`, retry: true,
        announce: "Connection lost. Reconnecting.",
      };
    case "offline":
      return { ...view, text: `Offline${asOf}`, retry: true, announce: `You are offline. Showing data as of ${status.lastMessageAt ? clockTime(status.lastMessageAt) : "page load"}.` };
    default:
      return stopped(view, status.reason);
  }
}

function stopped(view, reason) {
  switch (reason) {
    case "signed_out":
      return { ...view, text: "Signed out", signIn: true, announce: "Signed out. Sign in again to see live updates." };
    case "forbidden":
      return {
        ...view, text: "No longer allowed to view this dashboard", signIn: true,
        announce: "This account is not allowed to view this dashboard. Sign in with another account.",
      };
    case "closed_by_operator":
      return { ...view, text: "Closed by an operator", reload: true, announce: "An operator closed this dashboard. Reload the page to continue." };
    case "user":
      return { ...view, text: "Disconnected", retry: true, announce: "Disconnected." };
    default:
      return { ...view, text: "Disconnected: reload the page", reload: true, announce: "Disconnected. Reload the page to continue." };
  }
}

/** The pill's elements, kept in step with the connection. */
export class Badge {
  /**
   * @param {object} els `root` (#conn), `text`, `rtt`, `retry`, `signIn`, `reload`, `status`
   *   (the role="status" region), `body` (gets data-connection too) and, optionally,
   *   `detail` (the server's words for a close; also the pill's tooltip)
   * @param {{setTimeout?: Function, clearTimeout?: Function, settle?: number}} [options]
   *   `settle`: ms a meaning must last before it is announced, so flapping is not read out
   */
  constructor(els, {
    setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout = (handle) => globalThis.clearTimeout(handle),
    settle = 1000,
  } = {}) {
    this.els = els;
    this.status = null;
    this.paused = false;
    this.announced = "";
    this.pending = "";
    this.timer = null;
    this.settle = settle;
    this.setTimeout = setTimeout;
    this.clearTimeout = clearTimeout;
  }

  /** Called with every Connection status. */
  update(status, now) {
    this.status = status;
    this.#draw(now);
  }

  /** The person paused or resumed the page. */
  setPaused(on, now) {
    this.paused = on;
    if (this.status) this.#draw(now);
  }

  /** Called every second: the countdown moves. */
  tick(now) {
    if (this.status?.state === "waiting") this.#draw(now);
  }

  /** @private */
  #draw(now) {
    const view = describeConnection(this.status, now, { paused: this.paused });
    const { root, text, rtt, retry, signIn, reload, body, detail } = this.els;
    root.dataset.connection = view.state;
    root.dataset.paused = String(this.paused && view.state === "open");
    if (body) body.dataset.connection = view.state;
    if (text.textContent !== view.text) text.textContent = view.text;
    if (root.title !== view.detail) root.title = view.detail;
    if (detail) {
      if (detail.textContent !== view.detail) detail.textContent = view.detail;
      detail.hidden = !view.detail;
    }
    if (rtt.textContent !== view.rtt) rtt.textContent = view.rtt;
    rtt.hidden = !view.rtt;
    retry.hidden = !view.retry;
    signIn.hidden = !view.signIn;
    reload.hidden = !view.reload;
    this.#announce(view.announce);
  }

  /** @private Announce a meaning once it has held for `settle` ms, and never twice in a row. */
  #announce(message) {
    if (message === this.pending) return; // already on its way
    if (this.timer !== null) this.clearTimeout(this.timer);
    this.timer = null;
    this.pending = message;
    if (!message || message === this.announced) return;
    this.timer = this.setTimeout(() => {
      this.timer = null;
      this.announced = message;
      this.els.status.textContent = message;
    }, this.settle);
  }
}

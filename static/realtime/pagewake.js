// The page's own signals that the link may have changed: the network went away or came
// back, the tab became visible, got the focus, or was restored from the back/forward cache.
// Timers are throttled or frozen in a hidden tab, so these are when deadlines get checked.

// Window events; `visibilitychange` is on the document.
const WINDOW_EVENTS = ["online", "offline", "focus", "pageshow"];

export class PageWake {
  /** @private */ #win;
  /** @private */ #doc;
  /** @private */ #onOffline;
  /** @private */ #onWake;
  /** @private */ #listening = false;

  /**
   * @param {object} o
   * @param {EventTarget|null} [o.win] receives online/offline/focus/pageshow (and has `navigator`)
   * @param {EventTarget|null} [o.doc] receives visibilitychange (and has `visibilityState`)
   * @param {() => void} o.onOffline the browser says the network is gone
   * @param {(returned: boolean) => void} o.onWake the page may have slept; `returned`: the
   *   person or the network is back (visible again, online, restored from the cache), so a
   *   link that is down should be tried again now
   */
  constructor({ win, doc, onOffline, onWake }) {
    this.#win = win ?? null;
    this.#doc = doc ?? null;
    this.#onOffline = onOffline;
    this.#onWake = onWake;
  }

  /** Add or remove the listeners (a stopped connection listens to nothing). */
  listen(on) {
    if (on === this.#listening) return;
    this.#listening = on;
    const method = on ? "addEventListener" : "removeEventListener";
    for (const type of WINDOW_EVENTS) this.#win?.[method]?.(type, this.#handle);
    this.#doc?.[method]?.("visibilitychange", this.#handle);
  }

  /** Is the page shown? (No document: yes.) */
  get visible() {
    return this.#doc?.visibilityState !== "hidden";
  }

  /** Does the browser think it is online? (It is sure only when it says no.) */
  get online() {
    return this.#win?.navigator?.onLine !== false;
  }

  /** @private One bound handler for every event (a stable identity for removal). */
  #handle = (event) => {
    switch (event.type) {
      case "offline":
        return this.#onOffline();
      case "online":
        return this.#onWake(true);
      case "visibilitychange":
        return this.#doc?.visibilityState === "visible" && this.#onWake(true);
      case "pageshow":
        return this.#onWake(Boolean(event.persisted)); // restored from the back/forward cache
      default:
        return this.#onWake(false); // focus
    }
  };
}

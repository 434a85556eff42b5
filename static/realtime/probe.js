// While a page waits to reconnect and is visible, it asks the server's health check
// (`/healthz`) whether the server is back. The backoff alone, which grows after every refused
// try, once kept a page away for 16 s after a restart that took 3. With the probe, the first
// answer brings the page back within a fraction of a second when there is reason to think
// the server was away: the link that closed was live (the server restarted, or died), the
// server said it is restarting (1012), or a probe has since found it down.
//
// What keeps a storm calm: a refused probe costs the server nothing (it is not listening);
// each page probes at a jittered interval (0.5x to 1.5x, slower after 10 failures) and, once
// answered, reconnects after a further random spread; hidden tabs do not probe at all (they
// keep the backoff or the 1012 spread). And the answer is used once per reason: a socket that
// keeps failing while the health check answers (a proxy that refuses WebSockets, too many
// dashboards) is left to the backoff, so the probe never turns into a reconnect loop. The
// server then takes the returning sockets at its own pace (handshakes are accepted at once,
// syncs built a few at a time).
import { TIMING } from "./constants.js";

export class HealthProbe {
  /** @private */ #opts;
  /** @private */ #due = null; // clock ms of the next probe, or null
  /** @private */ #inflight = null; // {deadline, abort} of the probe on its way
  /** @private */ #id = 0; // answers to an older probe (or after stop) are ignored
  /** @private */ #failed = 0;
  /** @private */ #armed = false; // an answer means "come back now"

  /**
   * @param {object} o
   * @param {string} o.url the health check
   * @param {(url: string, init: object) => Promise<{ok: boolean}>} o.fetch
   * @param {() => number} o.now
   * @param {() => number} o.random uniform in [0, 1)
   * @param {() => boolean} o.ready may a probe go now? (the page is visible and online)
   * @param {() => void} o.onUp the server answered and there was reason to think it was away:
   *   reconnect soon
   * @param {() => void} o.onChange the next due time moved (an answer came): re-arm the timer
   * @param {() => AbortController|null} [o.controller]
   */
  constructor(o) {
    this.#opts = { controller: () => (typeof AbortController === "function" ? new AbortController() : null), ...o };
  }

  /** Is a probe due or on its way? */
  get active() {
    return this.#due !== null || this.#inflight !== null;
  }

  /** The next clock time `check` has something to do, or null. */
  get due() {
    return this.#inflight ? this.#inflight.deadline : this.#due;
  }

  /**
   * Start probing, after a close. `armed`: the server's first answer means it is back (the
   * link that closed was live, or the server said it is restarting). Already probing (a
   * retry failed too), it goes on as it was, keeping its schedule and what it knows.
   */
  start(now, { armed = false } = {}) {
    if (armed) this.#armed = true;
    if (this.active) return;
    this.#due = now + TIMING.PROBE_FIRST + this.#opts.random() * TIMING.PROBE_INTERVAL;
  }

  /** The link is live, or nobody is waiting any more: stop, and forget what was seen. */
  stop() {
    this.#id += 1;
    this.#inflight?.abort();
    this.#inflight = null;
    this.#due = null;
    this.#armed = false;
    this.#failed = 0;
  }

  /** Compare with the clock: send a due probe, fail one past its timeout. */
  check(now) {
    if (this.#inflight) {
      if (now >= this.#inflight.deadline) {
        this.#inflight.abort(); // its rejection comes later and is ignored
        this.#answered(this.#id, false);
      }
      return;
    }
    if (this.#due === null || now < this.#due) return;
    if (!this.#opts.ready()) {
      this.#due = now + this.#interval(); // a hidden or offline page does not probe; the wake-up reconnects
      return;
    }
    this.#send(now);
  }

  /** @private */
  #send(now) {
    this.#id += 1;
    const id = this.#id;
    const controller = this.#opts.controller();
    this.#inflight = { deadline: now + TIMING.PROBE_TIMEOUT, abort: () => controller?.abort() };
    this.#due = null;
    let answer;
    try {
      answer = this.#opts.fetch(this.#opts.url, {
        cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" },
        ...(controller ? { signal: controller.signal } : {}),
      });
    } catch {
      answer = Promise.resolve({ ok: false });
    }
    Promise.resolve(answer).then(
      (response) => this.#answered(id, Boolean(response?.ok)),
      () => this.#answered(id, false),
    );
  }

  /** @private */
  #answered(id, ok) {
    if (id !== this.#id || !this.#inflight) return; // an old probe, or stopped meanwhile
    this.#inflight = null;
    const now = this.#opts.now();
    if (ok && this.#armed) {
      this.#due = null;
      this.#armed = false; // used: if the socket fails again, it takes a new reason
      this.#opts.onUp();
      return;
    }
    if (ok) {
      this.#due = null; // the server answers, yet the socket failed: the backoff decides
    } else {
      this.#armed = true; // down: its next answer means it is back
      this.#failed += 1;
      this.#due = now + this.#interval();
    }
    this.#opts.onChange();
  }

  /** @private 0.5x to 1.5x the interval: fast at first, slower after many failures. */
  #interval() {
    const base = this.#failed < TIMING.PROBE_FAST_TRIES ? TIMING.PROBE_INTERVAL : TIMING.PROBE_SLOW_INTERVAL;
    return base * (0.5 + this.#opts.random());
  }
}

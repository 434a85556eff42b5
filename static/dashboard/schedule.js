// Render at most once per animation frame, and at most every `burstWindow` ms while changes
// keep coming: a burst of 500 events costs one or two renders, not 500.

export class FrameScheduler {
  /** @private */ #fn;
  /** @private */ #opts;
  /** @private */ #requested = false;
  /** @private */ #last = null;

  /**
   * @param {() => void} fn the render
   * @param {object} [options]
   * @param {(cb: Function) => unknown} [options.requestFrame] default requestAnimationFrame
   * @param {(cb: Function, ms: number) => unknown} [options.setTimeout]
   * @param {() => number} [options.now]
   * @param {number} [options.burstWindow] ms; a render soon after another waits this long
   */
  constructor(fn, options = {}) {
    const g = globalThis;
    this.#fn = fn;
    this.#opts = {
      requestFrame: options.requestFrame ?? ((cb) => g.requestAnimationFrame(cb)),
      setTimeout: options.setTimeout ?? ((cb, ms) => g.setTimeout(cb, ms)),
      now: options.now ?? (() => g.performance?.now() ?? Date.now()),
      burstWindow: options.burstWindow ?? 250,
    };
  }

  /** Ask for a render; any number of calls before it runs make one render. */
  request() {
    if (this.#requested) return;
    this.#requested = true;
    const { requestFrame, setTimeout, now, burstWindow } = this.#opts;
    const since = this.#last === null ? Infinity : now() - this.#last;
    if (since >= burstWindow) requestFrame(this.#run);
    else setTimeout(() => requestFrame(this.#run), burstWindow - since);
  }

  /** Render now if one was requested (for "show held changes" and tests). */
  flush() {
    if (this.#requested) this.#run();
  }

  /** @private */
  #run = () => {
    if (!this.#requested) return; // already flushed
    this.#requested = false;
    this.#last = this.#opts.now();
    this.#fn();
  };
}

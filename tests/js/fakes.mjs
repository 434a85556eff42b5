// Deterministic stand-ins for the browser: a clock with recorded timers, a scriptable
// WebSocket, event targets for window/document, and a seeded PRNG. No test sleeps.
import { Connection } from "../../static/realtime/connection.js";

/** A clock plus timers that are only ever run by the test. */
export class FakeClock {
  now = 0;
  timers = new Map(); // handle -> {at, fn}
  #nextHandle = 0;

  setTimeout = (fn, ms) => {
    const handle = ++this.#nextHandle;
    this.timers.set(handle, { at: this.now + Math.max(0, ms ?? 0), fn });
    return handle;
  };

  clearTimeout = (handle) => {
    this.timers.delete(handle);
  };

  get pending() {
    return this.timers.size;
  }

  /** Due time of the earliest timer, or null. */
  nextAt() {
    const next = this.#earliest();
    return next ? next[1].at : null;
  }

  /** Move time forward, firing each timer at its due time, in order. */
  advance(ms) {
    const end = this.now + ms;
    for (let next = this.#earliest(); next && next[1].at <= end; next = this.#earliest()) {
      this.now = Math.max(this.now, next[1].at);
      this.#fire(next);
    }
    this.now = end;
  }

  /** Move time without running any timer: a sleeping laptop or a throttled hidden tab. */
  jump(ms) {
    this.now += ms;
  }

  /** Run the overdue timers now, late, as a throttled tab finally does. */
  runDue() {
    for (let next = this.#earliest(); next && next[1].at <= this.now; next = this.#earliest()) {
      this.#fire(next);
    }
  }

  /** Fire the earliest timer now even if it is not due yet (an early or spurious wake-up). */
  fireNext() {
    const next = this.#earliest();
    if (next) this.#fire(next);
  }

  #fire([handle, timer]) {
    this.timers.delete(handle);
    timer.fn();
  }

  #earliest() {
    let best = null;
    for (const entry of this.timers) {
      if (!best || entry[1].at < best[1].at) best = entry;
    }
    return best;
  }
}

/** A WebSocket class whose instances the test opens, feeds and closes by hand. */
export function fakeNetwork() {
  const sockets = [];
  class FakeWebSocket {
    static OPEN = 1;
    readyState = 0;
    sent = [];
    closeCalls = [];
    onopen = null;
    onmessage = null;
    onerror = null;
    onclose = null;

    constructor(url) {
      this.url = url;
      sockets.push(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: socket not open");
      this.sent.push(JSON.parse(text));
    }

    close(code, reason) {
      this.closeCalls.push({ code, reason });
      if (this.readyState < 2) this.readyState = 2;
    }

    // ---- the server's side ----
    open() {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
    }

    receive(frame) {
      this.onmessage?.({ type: "message", data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }

    serverClose(code) {
      this.readyState = 3;
      this.onclose?.({ type: "close", code, reason: "", wasClean: code !== 1006 });
    }

    /** A failed connection, as a browser reports it: `error`, then `close` 1006. */
    fail() {
      this.readyState = 3;
      this.onerror?.({ type: "error" });
      this.onclose?.({ type: "close", code: 1006, reason: "", wasClean: false });
    }

    get attached() {
      return Boolean(this.onopen || this.onmessage || this.onerror || this.onclose);
    }

    sentOfType(type) {
      return this.sent.filter((frame) => frame.type === type);
    }
  }
  return {
    FakeWebSocket,
    sockets,
    get socket() {
      return sockets.at(-1);
    },
    get live() {
      return sockets.filter((s) => s.attached);
    },
  };
}

/** Enough of EventTarget to dispatch page events and count listeners. */
export class FakeTarget {
  listeners = new Map();

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  dispatch(type, extra = {}) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn({ type, ...extra });
  }

  count() {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}

/** mulberry32: a tiny seeded PRNG, so a failing fuzz run can be replayed by its seed. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const silentLogger = () => {
  const lines = [];
  const log = (level) => (...args) => lines.push([level, ...args]);
  return { lines, info: log("info"), warn: log("warn"), error: log("error") };
};

/** A Connection wired to fakes; `h.socket` is the newest socket. */
export function harness(options = {}) {
  const clock = new FakeClock();
  const net = fakeNetwork();
  const win = new FakeTarget();
  win.navigator = { onLine: true };
  const doc = new FakeTarget();
  doc.visibilityState = "visible";
  const statuses = [];
  const logger = silentLogger();
  const conn = new Connection({
    url: "ws://test.invalid/ws/dashboard/",
    WebSocket: net.FakeWebSocket,
    now: () => clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    logger,
    win,
    doc,
    onStatus: (status) => statuses.push(status),
    ...options,
  });
  const h = {
    conn, clock, net, win, doc, statuses, logger, store: conn.store,
    get socket() {
      return net.socket;
    },
    get state() {
      return conn.status.state;
    },
    /** Start (if needed), open the newest socket and answer its subscribe with `sync`. */
    connect(sync = {}) {
      if (conn.status.state === "stopped") conn.start();
      net.socket.open();
      net.socket.receive(syncFrame(sync));
      return net.socket;
    },
    hide() {
      doc.visibilityState = "hidden";
      doc.dispatch("visibilitychange");
    },
    show() {
      doc.visibilityState = "visible";
      doc.dispatch("visibilitychange");
    },
  };
  return h;
}

export function syncFrame(fields = {}) {
  return {
    type: "sync", epoch: "e1", seq: 0, reset: true, tasks: [], agents: [],
    deleted: { tasks: [], agents: [] }, ...fields,
  };
}

export const task = (id, version, extra = {}) => ({
  id, title: `task ${id}`, status: "queued", progress: 0, agent: null, version,
  updated_at: "2024-01-01T00:00:00Z", ...extra,
});

export const upsert = (seq, row, entity = "task") => ({
  type: "event", seq, entity, op: "upsert", data: { ...row, version: seq },
});

/**
 * `sync` cut into `n` part frames the way the server sends them: the same epoch, seq, reset
 * and extras on each, rows then deletions spread over the parts in order.
 */
export function syncParts(sync, n) {
  const whole = syncFrame(sync);
  const sides = "current" in whole; // a view's running tasks travel only when asked for
  const items = [
    ...whole.tasks.map((row) => ["tasks", row]), ...whole.agents.map((row) => ["agents", row]),
    ...(sides ? whole.current.map((row) => ["current", row]) : []),
    ...whole.deleted.tasks.map((id) => ["deletedTasks", id]), ...whole.deleted.agents.map((id) => ["deletedAgents", id]),
  ];
  const size = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_, i) => {
    const part = { tasks: [], agents: [], current: [], deletedTasks: [], deletedAgents: [] };
    for (const [list, item] of items.slice(i * size, (i + 1) * size)) part[list].push(item);
    return {
      ...whole, part: i + 1, parts: n, tasks: part.tasks, agents: part.agents,
      ...(sides ? { current: part.current } : {}),
      deleted: { tasks: part.deletedTasks, agents: part.deletedAgents },
    };
  });
}

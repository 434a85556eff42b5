import { backoff as defaultBackoff } from "./backoff.js";
import { CLOSE, ERR, MSG, PATH, SOCKET_OPEN, STATE, TIMING, closeAction, closeReason } from "./constants.js";
import { SyncParts } from "./parts.js";
import { Store } from "./store.js";

/**
 * @typedef {object} Status
 * @property {"connecting"|"open"|"waiting"|"offline"|"stopped"} state
 * @property {number} attempt consecutive failures; resets after STABLE_UPTIME open and synced
 * @property {number|null} retryAt clock ms of the next try while "waiting", else null
 * @property {string|null} reason why not open: a close reason ("signed_out", "forbidden",
 *   "closed_by_operator", "protocol", "too_large", "restart", "heartbeat_timeout",
 *   "too_many_dashboards", "try_later", ...), "handshake_timeout",
 *   "idle_timeout", "sync_timeout", "offline", "user" or "bad_url"; null when open/connecting
 * @property {string|null} message the server's own words for the last close (its `closing`
 *   error frame, or the close frame's reason), while "waiting" or "stopped"; else null
 * @property {number|null} rtt last measured round trip of a client ping, ms
 * @property {number|null} lastMessageAt clock ms of the last inbound frame (any connection)
 * @property {string|number|null} epoch
 * @property {number|null} last last applied sequence number
 * @property {number} interval heartbeat interval in ms (the server's, once synced)
 */

const stringOrNull = (value) => (typeof value === "string" && value ? value : null);

/** `ws:`/`wss:` URL of the dashboard endpoint on the page's own host. */
export function dashboardUrl(location) {
  if (!location) throw new Error("Connection: no `location` to build the URL from; pass options.url");
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${PATH}`;
}

// Window events; `visibilitychange` is on the document.
const WINDOW_EVENTS = ["online", "offline", "focus", "pageshow"];

/**
 * The dashboard's WebSocket: subscribes, feeds the Store, keeps the link alive and heals it.
 *
 * One state variable, one timer handle (cleared before it is set again) and a socket
 * generation number, so a callback from an old socket can never act. Deadlines are clock
 * values; the timer only says "look at the clock now", which keeps throttled background
 * timers from causing false teardowns.
 */
export class Connection {
  /** @type {Store} */ store;

  /** @private */ #state = STATE.STOPPED;
  /** @private */ #reason = null;
  /** @private */ #message = null;
  /** @private */ #attempt = 0;
  /** @private */ #retryAt = null;
  /** @private */ #timer = null;
  /** @private */ #socket = null;
  /** @private */ #generation = 0;
  /** @private */ #subscribing = false; // a subscribe is out and its (whole) sync has not arrived
  /** @private */ #syncDeadline = null; // socket open + sync, a resubscribe, or the next part, by then
  /** @private */ #parts = new SyncParts(); // parts of a sync in, its last not yet
  /** @private */ #closing = null; // {code, message} of this socket's `closing` error frame
  /** @private */ #stableAt = null; // when the attempt counter may reset
  /** @private */ #nextPingAt = 0;
  /** @private */ #pingId = 0;
  /** @private */ #pingSentAt = null;
  /** @private */ #rtt = null;
  /** @private */ #lastMessageAt = null;
  /** @private */ #opts;
  /** @private */ #interval;

  /**
   * @param {object} [options]
   * @param {string} [options.url] default: same host as `location`, `wss:` under https
   * @param {typeof WebSocket} [options.WebSocket]
   * @param {() => number} [options.now] clock in ms (default Date.now)
   * @param {(fn: Function, ms: number) => unknown} [options.setTimeout]
   * @param {(handle: unknown) => void} [options.clearTimeout]
   * @param {() => number} [options.random] uniform in [0, 1)
   * @param {Pick<Console, "info"|"warn"|"error">} [options.logger]
   * @param {(attempt: number, random: () => number) => number} [options.backoff]
   * @param {Store} [options.store]
   * @param {(status: Status) => void} [options.onStatus] on state, attempt, rtt and sync changes
   * @param {EventTarget|null} [options.win] receives online/offline/focus/pageshow
   * @param {EventTarget|null} [options.doc] receives visibilitychange
   * @param {number} [options.heartbeatInterval] ms; the server's `sync` may override it
   * @param {number} [options.firstPingDelay] ms from the first sync to the first client ping
   *   (default: one interval); a short delay shows a round-trip time soon after connecting
   * @param {number} [options.idleGrace] ms
   * @param {number} [options.handshakeTimeout] ms
   * @param {number} [options.stableUptime] ms
   */
  constructor(options = {}) {
    const g = globalThis;
    this.store = options.store ?? new Store();
    this.#opts = {
      url: options.url ?? dashboardUrl(g.location),
      WebSocket: options.WebSocket ?? g.WebSocket,
      now: options.now ?? Date.now,
      // Wrapped: window.setTimeout called with another `this` throws "Illegal invocation".
      setTimeout: options.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((handle) => g.clearTimeout(handle)),
      random: options.random ?? Math.random,
      logger: options.logger ?? console,
      backoff: options.backoff ?? defaultBackoff,
      onStatus: options.onStatus ?? (() => {}),
      win: "win" in options ? options.win : g.window,
      doc: "doc" in options ? options.doc : g.document,
      idleGrace: options.idleGrace ?? TIMING.IDLE_GRACE,
      handshakeTimeout: options.handshakeTimeout ?? TIMING.HANDSHAKE_TIMEOUT,
      stableUptime: options.stableUptime ?? TIMING.STABLE_UPTIME,
      firstPingDelay: options.firstPingDelay ?? null,
    };
    this.#interval = options.heartbeatInterval ?? TIMING.HEARTBEAT_INTERVAL;
    if (typeof this.#opts.WebSocket !== "function") {
      throw new Error("Connection: no WebSocket constructor here; pass options.WebSocket");
    }
  }

  /** Connect, if stopped (the initial state). Does nothing while already running. */
  start() {
    if (this.#state === STATE.STOPPED) this.retryNow();
  }

  /** Close and stay closed: no timer, visibility or network event reconnects. */
  stop() {
    if (this.#state === STATE.STOPPED) return;
    this.#teardown("stopped by user");
    this.#enter(STATE.STOPPED, { reason: "user" });
  }

  /**
   * Reconnect now with a fresh backoff, from any state: cancels a scheduled retry, replaces a
   * socket in progress, and leaves "stopped" (e.g. after the person signed in again).
   */
  retryNow() {
    this.#attempt = 0;
    this.#connect();
  }

  /**
   * Send one JSON frame. Never throws and never queues.
   * @returns {boolean} false when the socket is not open (or the link is already dead)
   */
  send(message) {
    if (this.#state === STATE.OPEN && this.#opts.now() >= this.#idleDeadline()) {
      this.#tick(); // a frame sent into a dead link is lost; reconnect instead
      return false;
    }
    return this.#send(message);
  }

  /** @returns {Status} a fresh snapshot */
  get status() {
    return {
      state: this.#state,
      attempt: this.#attempt,
      retryAt: this.#retryAt,
      reason: this.#reason,
      message: this.#message,
      rtt: this.#rtt,
      lastMessageAt: this.#lastMessageAt,
      epoch: this.store.epoch,
      last: this.store.last,
      interval: this.#interval,
    };
  }

  // ---- lifecycle (private) ----

  /** @private Replace any socket with a new one; handlers are set once, guarded by generation. */
  #connect() {
    this.#teardown("replaced");
    let socket;
    try {
      socket = new this.#opts.WebSocket(this.#opts.url);
    } catch (error) {
      // Only a bad URL or a CSP block throws here; retrying cannot fix either.
      this.#log("error", `realtime: cannot open ${this.#opts.url}; check options.url and CSP`, error);
      this.#enter(STATE.STOPPED, { reason: "bad_url" });
      return;
    }
    const generation = this.#generation;
    const current = () => generation === this.#generation;
    socket.onopen = () => current() && this.#subscribe();
    socket.onmessage = (event) => current() && this.#received(event.data);
    // Error and close funnel into one handler; the first one detaches the socket.
    socket.onerror = socket.onclose = (event) => current() && this.#closed(event);
    this.#socket = socket;
    this.#syncDeadline = this.#opts.now() + this.#opts.handshakeTimeout;
    this.#enter(STATE.CONNECTING);
  }

  /** @private Detach and close the current socket; its late callbacks become no-ops. */
  #teardown(why) {
    this.#generation += 1;
    const socket = this.#socket;
    this.#socket = null;
    this.#subscribing = false;
    this.#syncDeadline = null;
    this.#parts.clear(); // the rest of those parts will never come: the store stays where it was
    this.#closing = null;
    this.#stableAt = null;
    this.#pingSentAt = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try {
      socket.close(CLOSE.NORMAL, why);
    } catch {
      // Some browsers refuse to close a CONNECTING socket; it is detached either way.
    }
  }

  /** @private The socket closed or failed: stop, or schedule the retry its code asks for. */
  #closed(event) {
    const code = typeof event?.code === "number" ? event.code : CLOSE.ABNORMAL; // `error` has none
    const message = this.#closeMessage(code, event);
    this.#teardown("closed");
    const action = closeAction(code);
    const reason = closeReason(code);
    const said = message ? `: ${message}` : "";
    if (action === "stop") {
      this.#log("warn", `realtime: closed with ${code} (${reason})${said}; not reconnecting`);
      this.#enter(STATE.STOPPED, { reason, message });
      return;
    }
    const { random } = this.#opts;
    const delay = action === "restart"
      ? TIMING.RESTART_BASE + random() * TIMING.RESTART_SPREAD
      : this.#opts.backoff(this.#attempt, random);
    this.#attempt += 1;
    this.#enter(STATE.WAITING, { reason, message, retryAt: this.#opts.now() + delay });
  }

  /**
   * @private What the server said about this close: the `closing` error frame it sent just
   * before (daphne drops a close frame's reason text), else the close frame's reason.
   */
  #closeMessage(code, event) {
    const said = this.#closing;
    if (said && (said.code === code || said.code === undefined) && said.message) return said.message;
    return typeof event?.reason === "string" && event.reason ? event.reason : null;
  }

  /**
   * @private Give up on a live-looking socket (hung handshake, silent link). The time already
   * waited counts toward the backoff, so a hung server is not hammered and a dead link after
   * a long silence is replaced at once.
   */
  #abandon(reason, waited) {
    this.#log("info", `realtime: ${reason}; reconnecting`);
    this.#teardown(reason);
    const delay = Math.max(0, this.#opts.backoff(this.#attempt, this.#opts.random) - waited);
    this.#attempt += 1;
    if (delay === 0) this.#connect();
    else this.#enter(STATE.WAITING, { reason, retryAt: this.#opts.now() + delay });
  }

  /** @private The only place the state changes; (re)arms the one timer and reports. */
  #enter(state, { reason = null, message = null, retryAt = null } = {}) {
    const wasStopped = this.#state === STATE.STOPPED;
    this.#state = state;
    this.#reason = reason;
    this.#message = message;
    this.#retryAt = retryAt;
    if (wasStopped !== (state === STATE.STOPPED)) this.#listen(state !== STATE.STOPPED);
    this.#arm();
    this.#emit();
  }

  // ---- timer and deadlines (private) ----

  /** @private Clear the one timer, then set it for the earliest deadline of this state. */
  #arm() {
    if (this.#timer !== null) this.#opts.clearTimeout(this.#timer);
    this.#timer = null;
    const due = this.#nextDue();
    if (due === null) return;
    const handle = this.#opts.setTimeout(() => {
      if (handle !== this.#timer) return;
      this.#timer = null;
      this.#tick();
    }, Math.max(0, due - this.#opts.now()));
    this.#timer = handle;
  }

  /** @private */
  #nextDue() {
    switch (this.#state) {
      case STATE.WAITING:
        return this.#retryAt;
      case STATE.CONNECTING:
        return this.#syncDeadline;
      case STATE.OPEN:
        return Math.min(this.#idleDeadline(), this.#nextPingAt,
          this.#stableAt ?? Infinity, this.#syncDeadline ?? Infinity);
      default:
        return null;
    }
  }

  /** @private Dead-man deadline: any inbound frame moves it. */
  #idleDeadline() {
    return this.#lastMessageAt + this.#interval + this.#opts.idleGrace;
  }

  /** @private Compare every deadline with the clock; a timer may fire late or early. */
  #tick() {
    const now = this.#opts.now();
    const { handshakeTimeout, idleGrace } = this.#opts;
    if (this.#state === STATE.WAITING && now >= this.#retryAt) return this.#connect();
    if (this.#state === STATE.CONNECTING && now >= this.#syncDeadline) {
      return this.#abandon("handshake_timeout", handshakeTimeout);
    }
    if (this.#state === STATE.OPEN) {
      if (now >= this.#idleDeadline()) return this.#abandon("idle_timeout", this.#interval + idleGrace);
      if (this.#syncDeadline !== null && now >= this.#syncDeadline) {
        return this.#abandon("sync_timeout", handshakeTimeout);
      }
      if (this.#stableAt !== null && now >= this.#stableAt) this.#markStable();
      if (now >= this.#nextPingAt) this.#ping(now);
    }
    this.#arm();
  }

  /** @private Open and synced long enough: the next failure starts from the first delay. */
  #markStable() {
    this.#stableAt = null;
    this.#attempt = 0;
    this.#emit();
  }

  // ---- frames (private) ----

  /** @private Any inbound frame proves the link is alive. */
  #received(data) {
    this.#lastMessageAt = this.#opts.now();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      this.#log("warn", "realtime: ignoring a frame that is not JSON");
      return;
    }
    try {
      this.#dispatch(message);
    } catch (error) {
      // A malformed frame must not kill the socket handler; the sync deadline heals it.
      this.#log("error", "realtime: could not apply a frame", error);
    }
  }

  /** @private */
  #dispatch(message) {
    switch (message?.type) {
      case MSG.SYNC:
        return this.#synced(message);
      case MSG.EVENT:
      case MSG.EVENTS:
        if (this.#parts.staging) {
          // The server sends none between the parts of a sync. Not applied: the sync covers
          // them up to its seq, and one after it shows up as a gap once the sync is in.
          this.#log("warn", "realtime: ignoring events that arrived between the parts of a sync");
          return;
        }
        if (this.store.applyEvent(message) === "gap") this.#subscribe();
        return;
      case MSG.PING:
        this.#send({ type: MSG.PONG, id: message.id }); // at once: the server times us out
        if (this.#behind(message.seq) || this.#otherEpoch(message.epoch)) this.#subscribe();
        return;
      case MSG.PONG:
        return this.#ponged(message.id);
      case MSG.ERROR:
        if (message.code === ERR.CLOSING) {
          this.#closing = { code: typeof message.close === "number" ? message.close : undefined, message: stringOrNull(message.message) };
          this.#log("info", `realtime: the server is closing with ${message.close}: ${message.message}`);
          return;
        }
        if (message.code === ERR.UNAVAILABLE) {
          this.#log("info", `realtime: the sync is delayed: ${message.message}`); // the sync deadline still holds
          return;
        }
        this.#log("warn", `realtime: server rejected a frame (${message.code}): ${message.message}`);
        return;
      default:
        return; // unknown types are ignored so the protocol can grow
    }
  }

  /** @private Does the server's newest sequence number say we missed an event? */
  #behind(seq) {
    const { last } = this.store;
    return typeof seq === "number" && (last === null || seq > last);
  }

  /**
   * @private Has the stream started over (a restored or flushed database)? Its sequence
   * numbers may then be lower than `last`, so only the epoch tells; the resubscribe with the
   * old epoch gets a reset.
   */
  #otherEpoch(epoch) {
    const mine = this.store.epoch;
    return epoch !== undefined && epoch !== null && mine !== null && epoch !== mine;
  }

  /**
   * @private First subscribe after open, or a resync; never two outstanding, and none while
   * a sync's parts are arriving (that sync moves `last` first; a later ping or gap tells).
   */
  #subscribe() {
    if (this.#subscribing || this.#parts.staging) return;
    const { last, epoch } = this.store;
    if (!this.#send({ type: MSG.SUBSCRIBE, since: last, epoch })) return;
    this.#subscribing = true;
    if (this.#state === STATE.OPEN) {
      // A resync unanswered this long would leave the gap open forever: reconnect instead.
      this.#syncDeadline = this.#opts.now() + this.#opts.handshakeTimeout;
      this.#arm();
    }
  }

  /**
   * @private A `sync` frame, whole or one part of one. Parts are staged and the sync applied
   * only when the last is in. A broken staging (a part that does not fit) is dropped and
   * treated like a last part that never came: the sync deadline reconnects and the new
   * socket subscribes again from where the store still is. (A resubscribe on the same
   * socket would be a second subscribe outstanding, its answer hard to tell from the rest
   * of the broken one, and a server that breaks every time would be asked in a loop; the
   * reconnect goes through the backoff.)
   */
  #synced(message) {
    const outcome = this.#parts.add(message);
    if (outcome.discarded) this.#log("warn", `realtime: dropped the parts of a sync staged so far (${outcome.discarded})`);
    if (outcome.status === "stray") {
      this.#log("warn", `realtime: ignoring a sync part (${outcome.why})`);
      return;
    }
    if (outcome.status === "staged") {
      // Each part gives the rest one more handshake timeout: a large sync on a slow link
      // still arrives, and one that stops coming is abandoned.
      this.#syncDeadline = this.#opts.now() + this.#opts.handshakeTimeout;
      this.#arm();
      return;
    }
    this.#applySync(outcome.sync);
  }

  /** @private A whole sync: the store moves, the subscribe is answered, the link is open. */
  #applySync(message) {
    const seconds = message.heartbeat_interval;
    if (typeof seconds === "number" && seconds > 0) {
      this.#interval = Math.max(TIMING.MIN_HEARTBEAT_INTERVAL, seconds * 1000);
    }
    this.store.applySync(message);
    this.#subscribing = false;
    this.#syncDeadline = null;
    if (this.#state !== STATE.OPEN) {
      const now = this.#opts.now();
      this.#stableAt = now + this.#opts.stableUptime;
      const first = this.#opts.firstPingDelay;
      this.#nextPingAt = now + (first === null ? this.#interval : Math.min(first, this.#interval));
      this.#enter(STATE.OPEN);
      return;
    }
    this.#arm();
    this.#emit();
  }

  /** @private Client heartbeat; the matching pong gives the round-trip time. */
  #ping(now) {
    this.#pingId += 1;
    this.#pingSentAt = this.#send({ type: MSG.PING, id: this.#pingId }) ? now : null;
    this.#nextPingAt = now + this.#interval;
  }

  /** @private */
  #ponged(id) {
    if (id !== this.#pingId || this.#pingSentAt === null) return; // stale or unsolicited
    this.#rtt = this.#opts.now() - this.#pingSentAt;
    this.#pingSentAt = null;
    this.#emit();
  }

  /** @private */
  #send(message) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== SOCKET_OPEN) return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch (error) {
      this.#log("warn", "realtime: send failed", error);
      return false;
    }
  }

  // ---- page lifecycle (private) ----

  /** @private Listeners exist exactly while not stopped, so a stopped client stays stopped. */
  #listen(on) {
    const method = on ? "addEventListener" : "removeEventListener";
    for (const type of WINDOW_EVENTS) this.#opts.win?.[method]?.(type, this.#onPageEvent);
    this.#opts.doc?.[method]?.("visibilitychange", this.#onPageEvent);
  }

  /** @private One bound handler for every page event (stable identity for removal). */
  #onPageEvent = (event) => {
    switch (event.type) {
      case "offline":
        return this.#offline();
      case "online":
        return this.#wake(true);
      case "visibilitychange":
        return this.#opts.doc?.visibilityState === "visible" && this.#wake(true);
      case "pageshow":
        return this.#wake(Boolean(event.persisted)); // restored from the back/forward cache
      default:
        return this.#wake(false); // focus
    }
  };

  /**
   * @private The person is back, or the network is: reconnect at once when not connected
   * (fresh backoff); otherwise check every deadline against the clock, since timers may
   * have been throttled or frozen while the page was hidden.
   */
  #wake(returned) {
    const state = this.#state;
    if (state === STATE.STOPPED) return;
    const down = state === STATE.WAITING || (state === STATE.OFFLINE && this.#online());
    if (returned && down) this.retryNow();
    else this.#tick();
  }

  /** @private */
  #offline() {
    if (this.#state === STATE.STOPPED || this.#state === STATE.OFFLINE) return;
    this.#teardown("offline");
    this.#enter(STATE.OFFLINE, { reason: "offline" });
  }

  /** @private */
  #online() {
    return this.#opts.win?.navigator?.onLine !== false;
  }

  /** @private */
  #emit() {
    try {
      this.#opts.onStatus(this.status);
    } catch (error) {
      this.#log("error", "realtime: onStatus threw", error);
    }
  }

  /** @private */
  #log(level, ...args) {
    this.#opts.logger?.[level]?.(...args);
  }
}

import { backoff as defaultBackoff } from "./backoff.js";
import { CLOSE, ERR, MSG, PATH, SOCKET_OPEN, STATE, TIMING, closeAction, closeReason } from "./constants.js";
import { Heartbeat } from "./heartbeat.js";
import { PageWake } from "./pagewake.js";
import { HealthProbe } from "./probe.js";
import { SyncSession } from "./session.js";
import { Store } from "./store.js";

/**
 * @typedef {object} Status
 * @property {"connecting"|"open"|"waiting"|"offline"|"stopped"} state
 * @property {number} attempt consecutive failures; resets after STABLE_UPTIME open and synced
 * @property {number|null} retryAt clock ms of the next try while "waiting", else null
 * @property {string|null} reason why not open: a close reason ("signed_out", "forbidden",
 *   "closed_by_operator", "protocol", "too_large", "restart", "heartbeat_timeout",
 *   "too_many_dashboards", "try_later", ...), "handshake_timeout", "idle_timeout",
 *   "sync_timeout", "offline", "user", "bad_url" or "bad_view"; null when open/connecting
 * @property {string|null} message the server's own words for the last close (its `closing`
 *   error frame, or the close frame's reason), while "waiting" or "stopped"; else null
 * @property {number|null} rtt last measured round trip of a client ping, ms
 * @property {number|null} lastMessageAt clock ms of the last inbound frame (any connection)
 * @property {number|null} confirmedAt clock ms of the last frame that showed the store equal
 *   to the server (a sync, an event or range, a ping at the store's number), or null
 * @property {string|number|null} epoch
 * @property {number|null} last last applied sequence number
 * @property {number} interval heartbeat interval in ms (the server's, once synced)
 * @property {object|null} view the view subscribed to (protocol v2), null for the whole table
 * @property {boolean} viewPending a new view was asked for and its sync is not in yet (the
 *   store still holds the window of the one before)
 * @property {string|null} viewError the server's words when it refused the last view asked for
 */

const stringOrNull = (value) => (typeof value === "string" && value ? value : null);

/** A server's `retry_within` (seconds) as milliseconds, or null when absent or not a number. */
const spreadOf = (seconds) => (typeof seconds === "number" && seconds >= 0 && seconds <= 300 ? seconds * 1000 : null);

/** `ws:`/`wss:` URL of the dashboard endpoint on the page's own host. */
export function dashboardUrl(location) {
  if (!location) throw new Error("Connection: no `location` to build the URL from; pass options.url");
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${PATH}`;
}

/** The health check on the page's own host, or null where there is no page (no probing). */
function healthUrl(location) {
  return location?.href ? new URL("/healthz", location.href).href : null;
}

/**
 * The dashboard's WebSocket: the state machine that subscribes, feeds the Store, keeps the
 * link alive and heals it. Its parts, each in its own file: the Heartbeat (pings, the
 * dead-man deadline), the SyncSession (what was asked: the subscribe, its parts, the sync
 * deadline, the view), the PageWake (visibility, network, focus, back/forward cache) and the
 * HealthProbe (is the server back?).
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
  /** @private */ #closing = null; // {code, message, within} of this socket's `closing` error frame
  /** @private */ #spread = null; // ms within which a restarting server asked us back, or null
  /** @private */ #stableAt = null; // when the attempt counter may reset
  /** @private */ #confirmedAt = null;
  /** @private */ #viewError = null;
  /** @private */ #opts;
  /** @private @type {Heartbeat} */ #heartbeat;
  /** @private @type {SyncSession} */ #session;
  /** @private @type {PageWake} */ #page;
  /** @private @type {HealthProbe|null} */ #probe = null;

  /**
   * @param {object} [options]
   * @param {string} [options.url] default: same host as `location`, `wss:` under https
   * @param {object|null} [options.view] subscribe to this window of the tasks (protocol v2,
   *   docs/protocol.md "Views"); null or absent: the whole table (v1)
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
   * @param {string|null} [options.probeUrl] health check probed while a visible page waits
   *   (default: /healthz on the page's host; null: never probe)
   * @param {(url: string, init: object) => Promise<{ok: boolean}>} [options.fetch]
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
      idleGrace: options.idleGrace ?? TIMING.IDLE_GRACE,
      handshakeTimeout: options.handshakeTimeout ?? TIMING.HANDSHAKE_TIMEOUT,
      stableUptime: options.stableUptime ?? TIMING.STABLE_UPTIME,
    };
    if (typeof this.#opts.WebSocket !== "function") {
      throw new Error("Connection: no WebSocket constructor here; pass options.WebSocket");
    }
    this.#heartbeat = new Heartbeat({
      interval: options.heartbeatInterval ?? TIMING.HEARTBEAT_INTERVAL,
      grace: this.#opts.idleGrace,
      firstPingDelay: options.firstPingDelay ?? null,
    });
    this.#session = new SyncSession({ view: options.view ?? null, timeout: this.#opts.handshakeTimeout });
    this.#page = new PageWake({
      win: "win" in options ? options.win : g.window,
      doc: "doc" in options ? options.doc : g.document,
      onOffline: () => this.#offline(),
      onWake: (returned) => this.#wake(returned),
    });
    const probeUrl = "probeUrl" in options ? options.probeUrl : healthUrl(g.location);
    const fetch = options.fetch ?? (typeof g.fetch === "function" ? (url, init) => g.fetch(url, init) : null);
    if (probeUrl && fetch) {
      this.#probe = new HealthProbe({
        url: probeUrl, fetch, now: this.#opts.now, random: this.#opts.random,
        ready: () => this.#page.visible && this.#page.online,
        onUp: () => this.#serverBack(),
        onChange: () => this.#arm(),
      });
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
   * Subscribe to another view (null: the whole table). On a live link the subscribe goes at
   * once (or as soon as the one outstanding is answered), from the store's position
   * (`since`, `epoch`, `fp`); its sync replaces the window. Frames of the old view that
   * arrive meanwhile are not applied. Not connected, the next connection subscribes with it.
   */
  setView(view) {
    this.#viewError = null;
    if (this.#session.setView(view ?? null) && this.#socket?.readyState === SOCKET_OPEN) this.#subscribe();
    this.#emit();
  }

  /** The view subscribed to (or to be), null for the whole table. */
  get view() {
    return this.#session.view;
  }

  /**
   * Send one JSON frame. Never throws and never queues.
   * @returns {boolean} false when the socket is not open (or the link is already dead)
   */
  send(message) {
    if (this.#state === STATE.OPEN && this.#opts.now() >= this.#heartbeat.deadline) {
      this.#tick(); // a frame sent into a dead link is lost; reconnect instead
      return false;
    }
    return this.#send(message);
  }

  /** @returns {Status} a fresh snapshot */
  get status() {
    const beat = this.#heartbeat;
    return {
      state: this.#state,
      attempt: this.#attempt,
      retryAt: this.#retryAt,
      reason: this.#reason,
      message: this.#message,
      rtt: beat.rtt,
      lastMessageAt: beat.lastMessageAt,
      confirmedAt: this.#confirmedAt,
      epoch: this.store.epoch,
      last: this.store.last,
      interval: beat.interval,
      view: this.#session.view,
      viewPending: this.#session.changing,
      viewError: this.#viewError,
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
    this.#session.begin(this.#opts.now());
    this.#enter(STATE.CONNECTING);
  }

  /** @private Detach and close the current socket; its late callbacks become no-ops. */
  #teardown(why) {
    this.#generation += 1;
    const socket = this.#socket;
    this.#socket = null;
    this.#session.end();
    this.#heartbeat.stop();
    this.#closing = null;
    this.#stableAt = null;
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
    const within = this.#closing?.within ?? null; // read before the teardown forgets it
    const wasLive = this.#state === STATE.OPEN;
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
    // A restarting server says within how long its sockets should come back (from how many it
    // closes): a lone page returns at once, a thousand spread themselves; else the default.
    this.#spread = action === "restart" ? within : null;
    const delay = action === "restart"
      ? TIMING.RESTART_BASE + random() * (this.#spread ?? TIMING.RESTART_SPREAD)
      : this.#opts.backoff(this.#attempt, random);
    this.#attempt += 1;
    this.#wait({ reason, message, retryAt: this.#opts.now() + delay }, action === "restart" || wasLive);
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
    const wasLive = this.#state === STATE.OPEN;
    this.#teardown(reason);
    const delay = Math.max(0, this.#opts.backoff(this.#attempt, this.#opts.random) - waited);
    this.#attempt += 1;
    if (delay === 0) this.#connect();
    else this.#wait({ reason, retryAt: this.#opts.now() + delay }, wasLive);
  }

  /**
   * @private Wait for `retryAt`; a visible page meanwhile asks whether the server is back.
   * `armed`: the server's first answer brings the page back (the link was live, or the
   * server is restarting); else only an answer after it was found down does.
   */
  #wait(detail, armed) {
    this.#probe?.start(this.#opts.now(), { armed });
    this.#enter(STATE.WAITING, detail);
  }

  /** @private The probe says the server is back: reconnect within a small random spread. */
  #serverBack() {
    if (this.#state !== STATE.WAITING) return;
    const soon = this.#opts.now() + this.#opts.random() * Math.max(TIMING.PROBE_SPREAD, this.#spread ?? 0);
    this.#log("info", "realtime: the server answers its health check again; reconnecting");
    this.#enter(STATE.WAITING, { reason: this.#reason, message: this.#message, retryAt: Math.min(this.#retryAt, soon) });
  }

  /** @private The only place the state changes; (re)arms the one timer and reports. */
  #enter(state, { reason = null, message = null, retryAt = null } = {}) {
    const wasStopped = this.#state === STATE.STOPPED;
    this.#state = state;
    this.#reason = reason;
    this.#message = message;
    this.#retryAt = retryAt;
    // The probe runs while the page tries to come back (waiting, and the tries themselves).
    if (state === STATE.OPEN || state === STATE.STOPPED || state === STATE.OFFLINE) this.#probe?.stop();
    if (wasStopped !== (state === STATE.STOPPED)) this.#page.listen(state !== STATE.STOPPED);
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
        return Math.min(this.#retryAt, this.#probe?.due ?? Infinity);
      case STATE.CONNECTING:
        return Math.min(this.#session.deadline, this.#probe?.due ?? Infinity);
      case STATE.OPEN:
        return Math.min(this.#heartbeat.deadline, this.#heartbeat.nextPingAt,
          this.#stableAt ?? Infinity, this.#session.deadline ?? Infinity);
      default:
        return null;
    }
  }

  /** @private Compare every deadline with the clock; a timer may fire late or early. */
  #tick() {
    const now = this.#opts.now();
    const deadline = this.#session.deadline;
    if (this.#state === STATE.WAITING) {
      if (now >= this.#retryAt) return this.#connect();
      this.#probe?.check(now);
    }
    if (this.#state === STATE.CONNECTING) {
      if (now >= deadline) return this.#abandon("handshake_timeout", this.#opts.handshakeTimeout);
      this.#probe?.check(now);
    }
    if (this.#state === STATE.OPEN) {
      if (now >= this.#heartbeat.deadline) return this.#abandon("idle_timeout", this.#heartbeat.silence);
      if (deadline !== null && now >= deadline) return this.#abandon("sync_timeout", this.#opts.handshakeTimeout);
      if (this.#stableAt !== null && now >= this.#stableAt) this.#markStable();
      this.#heartbeat.pingIfDue(now, (frame) => this.#send(frame));
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
    this.#heartbeat.received(this.#opts.now());
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
        return this.#changed(message);
      case MSG.PING:
        this.#send({ type: MSG.PONG, id: message.id }); // at once: the server times us out
        if (this.#behind(message.seq) || this.#otherEpoch(message.epoch)) this.#subscribe();
        else if (typeof message.seq === "number" && this.store.last !== null && !this.#session.busy) this.#confirmed();
        return;
      case MSG.PONG:
        if (this.#heartbeat.ponged(message.id, this.#opts.now())) this.#emit();
        return;
      case MSG.ERROR:
        return this.#serverError(message);
      default:
        return; // unknown types are ignored so the protocol can grow
    }
  }

  /** @private An event, a batch of them (v1), or a range of a view (v2). */
  #changed(message) {
    if (this.#session.staging) {
      // The server sends none between the parts of a sync. Not applied: the sync covers
      // them up to its seq, and one after it shows up as a gap once the sync is in.
      this.#log("warn", "realtime: ignoring events that arrived between the parts of a sync");
      return;
    }
    if (this.#session.changing) return; // the old view's: the new view's sync covers what matters
    const outcome = this.store.applyEvent(message);
    if (outcome === "gap") this.#subscribe();
    else this.#confirmed();
  }

  /** @private An error frame: why the server closes, a delayed sync, a refused view. */
  #serverError(message) {
    const words = stringOrNull(message.message);
    switch (message.code) {
      case ERR.CLOSING:
        this.#closing = {
          code: typeof message.close === "number" ? message.close : undefined, message: words,
          within: spreadOf(message.retry_within),
        };
        this.#log("info", `realtime: the server is closing with ${message.close}: ${message.message}`);
        return;
      case ERR.UNAVAILABLE:
        this.#log("info", `realtime: the sync is delayed: ${message.message}`); // the sync deadline still holds
        return;
      case ERR.BAD_VIEW:
        return this.#viewRefused(words ?? "the server refused this view");
      default:
        this.#log("warn", `realtime: server rejected a frame (${message.code}): ${message.message}`);
    }
  }

  /**
   * @private The server built nothing for the view asked for. With a view already live, go
   * back to it (its ranges keep coming); with none, a retry would be refused the same way.
   */
  #viewRefused(words) {
    this.#log("warn", `realtime: the server refused the view ${JSON.stringify(this.#session.view)}: ${words}`);
    this.#viewError = words;
    const live = this.store.view;
    if (live) {
      this.#session.refused(live);
      this.#arm();
      this.#emit();
      return;
    }
    this.#teardown("bad view");
    this.#enter(STATE.STOPPED, { reason: "bad_view", message: words });
  }

  /** @private The store is known to equal the server as of now. */
  #confirmed() {
    this.#confirmedAt = this.#opts.now();
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
    const session = this.#session;
    if (session.busy) return;
    if (!this.#send(session.frame(this.store))) return;
    session.sent(this.#opts.now(), this.#state === STATE.OPEN);
    if (this.#state === STATE.OPEN) this.#arm();
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
    const session = this.#session;
    const outcome = session.take(message, this.#opts.now());
    if (outcome.discarded) this.#log("warn", `realtime: dropped the parts of a sync staged so far (${outcome.discarded})`);
    switch (outcome.status) {
      case "stray":
        this.#log("warn", `realtime: ignoring a sync part (${outcome.why})`);
        return;
      case "staged":
        this.#arm();
        return;
      case "again":
        // The answer for a view no longer wanted: the store stays where it was, and the
        // subscribe for the new view goes now (it is the one outstanding).
        this.#subscribe();
        this.#arm();
        return;
      default:
        this.#applySync(outcome.sync);
    }
  }

  /** @private A whole sync: the store moves, the subscribe is answered, the link is open. */
  #applySync(message) {
    this.#heartbeat.adopt(message.heartbeat_interval);
    this.store.applySync(message);
    this.#session.answered();
    this.#confirmed();
    if (this.#state !== STATE.OPEN) {
      const now = this.#opts.now();
      this.#stableAt = now + this.#opts.stableUptime;
      this.#heartbeat.start(now);
      this.#enter(STATE.OPEN);
      return;
    }
    this.#arm();
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

  /**
   * @private The person is back, or the network is: reconnect at once when not connected
   * (fresh backoff); otherwise check every deadline against the clock, since timers may
   * have been throttled or frozen while the page was hidden.
   */
  #wake(returned) {
    const state = this.#state;
    if (state === STATE.STOPPED) return;
    const down = state === STATE.WAITING || (state === STATE.OFFLINE && this.#page.online);
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

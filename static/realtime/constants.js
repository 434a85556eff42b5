// Wire protocol names (v1 stream, v2 views), close codes and client timings, defined once
// for the browser.
// The server's copy is realtime/protocol.py; docs/protocol.md is the reference. Keep in step.

/** WebSocket endpoint path (same host as the page). */
export const PATH = "/ws/dashboard/";

/** `WebSocket.OPEN`, spelled out so fakes need not define the static. */
export const SOCKET_OPEN = 1;

/** Frame `type` values, both directions. */
export const MSG = Object.freeze({
  SUBSCRIBE: "subscribe",
  SYNC: "sync",
  EVENT: "event",
  EVENTS: "events",
  PING: "ping",
  PONG: "pong",
  ERROR: "error",
});

/** `code` values of server `error` frames the client acts on. */
export const ERR = Object.freeze({
  CLOSING: "closing", // sent just before a close: `close` is the code, `message` the reason
  UNAVAILABLE: "unavailable", // a sync cannot be built now; it follows when it can
  BAD_VIEW: "bad_view", // the subscribe's view was refused; nothing was built
  VIEW_REQUIRED: "view_required", // a subscribe without a view on a table too large to stream whole
});

/**
 * The streamed entities this client keeps: event `entity` -> its key in a `sync` (rows) and
 * in `sync.deleted` (ids), and the Store's Map of the same name. One table drives the store,
 * the sync parts and the renderers; the server's is realtime/registry.py. Entities the
 * server streams that are not listed here are skipped (their events still advance `last`).
 */
export const ENTITIES = Object.freeze({ task: "tasks", agent: "agents" });

/**
 * Side sets a view may ask for beside its window (protocol v2): event `entity` -> its key in
 * a `sync` (rows only, never deletions) and the Store's Map of the same name. `current`: every
 * running task, so the agents panel shows each busy agent's task whatever the view.
 */
export const SIDES = Object.freeze({ current: "current" });

/** The entity clients hold a window of (a view), and what a view may ask for. */
export const VIEW = Object.freeze({
  ENTITY: "task",
  DEFAULT_LIMIT: 200,
  MAX_LIMIT: 1000,
  STEP: 200, // "Show more" grows the limit by this much
});

/** Close codes the client acts on. */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  TOO_LARGE: 1009,
  SERVER_ERROR: 1011,
  SERVICE_RESTART: 1012,
  HEARTBEAT_TIMEOUT: 4008,
  TRY_LATER: 4013, // a service the server needs (the database) is not answering
  RATE_LIMITED: 4029,
  TOO_MANY_SOCKETS: 4030, // this user has too many dashboards open already
  NOT_SIGNED_IN: 4501,
  FORBIDDEN: 4503,
  PROTOCOL_VIOLATION: 4509,
  BY_OPERATOR: 4510, // an operator closed this user's dashboards from the admin
});

/** Application codes in this band mean "reconnect with backoff". */
export const RETRY_BAND = Object.freeze([4000, 4499]);
/** Application codes in this band mean "stop; a person has to act". */
export const TERMINAL_BAND = Object.freeze([4500, 4999]);

/** The one state variable of a Connection takes these values. */
export const STATE = Object.freeze({
  CONNECTING: "connecting", // socket handshake, then waiting for the first `sync`
  OPEN: "open", // synced: the store equals the database at `last`
  WAITING: "waiting", // a retry is scheduled at `retryAt`
  OFFLINE: "offline", // the browser says there is no network; no retries until `online`
  STOPPED: "stopped", // user stop or terminal close; only start()/retryNow() leave it
});

/** Default timings, in milliseconds. */
export const TIMING = Object.freeze({
  HEARTBEAT_INTERVAL: 25000, // server may override with `sync.heartbeat_interval` (seconds)
  MIN_HEARTBEAT_INTERVAL: 1000, // guard against a misconfigured server asking for a busy loop
  IDLE_GRACE: 10000, // dead-man deadline = interval + grace, reset by any inbound frame
  HANDSHAKE_TIMEOUT: 10000, // socket open + first `sync` (or its next part), and any later resubscribe
  STABLE_UPTIME: 10000, // open and synced this long before the attempt counter resets
  BACKOFF_BASE: 1000,
  BACKOFF_MIN: 250,
  BACKOFF_CAP: 30000,
  RESTART_BASE: 500, // 1012: small floor so nobody reconnects into the dying process
  RESTART_SPREAD: 5000, // 1012: uniform spread so a deploy is not a thundering herd
  // While waiting in a visible tab, /healthz is probed; when the server is seen coming back
  // (a probe failed, or it announced a restart), the socket reconnects at once.
  PROBE_FIRST: 250, // first probe after the close: this plus up to one PROBE_INTERVAL
  PROBE_INTERVAL: 1000, // then every 0.5x to 1.5x this
  PROBE_FAST_TRIES: 10, // after this many failed probes, every 0.5x to 1.5x PROBE_SLOW_INTERVAL
  PROBE_SLOW_INTERVAL: 5000,
  PROBE_TIMEOUT: 2000, // a probe unanswered this long has failed
  PROBE_SPREAD: 500, // the server answered: reconnect within this (uniform)
});

// Why the connection is not (or no longer) open, as shown to the person.
const REASONS = new Map([
  [CLOSE.NORMAL, "normal"],
  [CLOSE.GOING_AWAY, "going_away"],
  [CLOSE.ABNORMAL, "abnormal"],
  [CLOSE.TOO_LARGE, "too_large"],
  [CLOSE.SERVER_ERROR, "server_error"],
  [CLOSE.SERVICE_RESTART, "restart"],
  [CLOSE.HEARTBEAT_TIMEOUT, "heartbeat_timeout"],
  [CLOSE.TRY_LATER, "try_later"],
  [CLOSE.RATE_LIMITED, "rate_limited"],
  [CLOSE.TOO_MANY_SOCKETS, "too_many_dashboards"],
  [CLOSE.NOT_SIGNED_IN, "signed_out"],
  [CLOSE.FORBIDDEN, "forbidden"],
  [CLOSE.PROTOCOL_VIOLATION, "protocol"],
  [CLOSE.BY_OPERATOR, "closed_by_operator"],
]);

const inBand = (code, [lo, hi]) => code >= lo && code <= hi;

/**
 * What the client does after a close with `code`: "stop" (terminal 4500-4999 and 1009, a
 * retry would fail the same way), "restart" (1012: random delay) or "retry" (backoff).
 */
export function closeAction(code) {
  if (code === CLOSE.TOO_LARGE || inBand(code, TERMINAL_BAND)) return "stop";
  if (code === CLOSE.SERVICE_RESTART) return "restart";
  return "retry";
}

/** A short machine-readable reason for a close code, for the status pill. */
export function closeReason(code) {
  return REASONS.get(code) ?? (inBand(code, TERMINAL_BAND) ? "terminal" : "closed");
}

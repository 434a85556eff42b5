// The link's pulse: the dead-man deadline that any inbound frame moves, and the client's own
// pings, whose pongs give the round-trip time. Deadlines are clock values; the owner of the
// one timer (the Connection) asks for them and checks them against its clock.
import { TIMING } from "./constants.js";

export class Heartbeat {
  /** Server heartbeat interval, ms (the server's, once a sync said it). */ interval;
  /** Clock ms of the last inbound frame (of any socket), or null. */ lastMessageAt = null;
  /** Last measured round trip of a client ping, ms, or null. */ rtt = null;

  /** @private */ #grace;
  /** @private */ #firstPingDelay;
  /** @private */ #nextPingAt = 0;
  /** @private */ #pingId = 0;
  /** @private */ #pingSentAt = null;

  /**
   * @param {object} o
   * @param {number} o.interval ms until the server says otherwise
   * @param {number} o.grace ms of silence past the interval before the link counts as dead
   * @param {number|null} [o.firstPingDelay] ms from going live to the first client ping
   *   (default: one interval); a short one shows a round-trip time soon after connecting
   */
  constructor({ interval, grace, firstPingDelay = null }) {
    this.interval = interval;
    this.#grace = grace;
    this.#firstPingDelay = firstPingDelay;
  }

  /** Any inbound frame proves the link is alive. */
  received(now) {
    this.lastMessageAt = now;
  }

  /** A sync's `heartbeat_interval` (seconds) sets the interval; nonsense is ignored. */
  adopt(seconds) {
    if (typeof seconds === "number" && seconds > 0) {
      this.interval = Math.max(TIMING.MIN_HEARTBEAT_INTERVAL, seconds * 1000);
    }
  }

  /** The link went live (its first whole sync): client pings start. */
  start(now) {
    const first = this.#firstPingDelay;
    this.#nextPingAt = now + (first === null ? this.interval : Math.min(first, this.interval));
  }

  /** The socket is gone: a ping in flight will never be answered. */
  stop() {
    this.#pingSentAt = null;
  }

  /** Dead-man deadline: the last frame plus the interval plus the grace. */
  get deadline() {
    return this.lastMessageAt + this.interval + this.#grace;
  }

  /** How long a link had been silent when `deadline` passed (it counts toward the backoff). */
  get silence() {
    return this.interval + this.#grace;
  }

  /** When the next client ping is due. */
  get nextPingAt() {
    return this.#nextPingAt;
  }

  /**
   * Ping if one is due: `send(frame)` says whether the frame went. The next is due one
   * interval later either way.
   */
  pingIfDue(now, send) {
    if (now < this.#nextPingAt) return;
    this.#pingId += 1;
    this.#pingSentAt = send({ type: "ping", id: this.#pingId }) ? now : null;
    this.#nextPingAt = now + this.interval;
  }

  /** A pong: true when it answers our outstanding ping (the round trip is then known). */
  ponged(id, now) {
    if (id !== this.#pingId || this.#pingSentAt === null) return false; // stale or unsolicited
    this.rtt = now - this.#pingSentAt;
    this.#pingSentAt = null;
    return true;
  }
}

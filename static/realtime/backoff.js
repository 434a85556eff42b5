import { TIMING } from "./constants.js";

// 1000 * 2^16 is far above the cap; clamping the exponent keeps 2^n finite, so huge attempt
// counts cannot overflow into Infinity - Infinity = NaN or 0 ms (socket.io's storm bug).
const MAX_EXPONENT = 16;

/**
 * Delay in ms before retry number `attempt` (0 for the first retry).
 *
 * Full jitter: uniform between BACKOFF_MIN and min(cap, base * 2^attempt). It stays random
 * at the cap, so a fleet that lost the server together does not come back in lock step.
 *
 * @param {number} attempt consecutive failures so far
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number}
 */
export function backoff(attempt, random = Math.random) {
  const { BACKOFF_BASE: base, BACKOFF_MIN: min, BACKOFF_CAP: cap } = TIMING;
  const n = Math.min(MAX_EXPONENT, Math.max(0, Math.floor(attempt) || 0));
  const ceiling = Math.min(cap, base * 2 ** n);
  const r = Math.min(1, Math.max(0, Number(random()) || 0));
  return min + r * (ceiling - min);
}

import assert from "node:assert/strict";
import { test } from "node:test";
import { backoff } from "../../static/realtime/backoff.js";
import { TIMING } from "../../static/realtime/constants.js";

const ALMOST_ONE = 1 - Number.EPSILON;

test("attempt 0 spans [min, base)", () => {
  assert.equal(backoff(0, () => 0), TIMING.BACKOFF_MIN);
  assert.ok(backoff(0, () => ALMOST_ONE) < TIMING.BACKOFF_BASE);
  assert.ok(backoff(0, () => ALMOST_ONE) > TIMING.BACKOFF_BASE - 1);
});

test("the ceiling doubles per attempt until the cap", () => {
  const top = (n) => backoff(n, () => 1);
  assert.deepEqual([0, 1, 2, 3, 4].map(top), [1000, 2000, 4000, 8000, 16000]);
  assert.equal(top(5), TIMING.BACKOFF_CAP);
  assert.equal(top(6), TIMING.BACKOFF_CAP);
});

test("at the cap the delay spans [min, cap] and is still random", () => {
  assert.equal(backoff(50, () => 0), TIMING.BACKOFF_MIN);
  assert.equal(backoff(50, () => 1), TIMING.BACKOFF_CAP);
  const delays = new Set([0.1, 0.3, 0.5, 0.7, 0.9].map((r) => backoff(50, () => r)));
  assert.equal(delays.size, 5, "different random values must give different delays at the cap");
  assert.ok(backoff(50, () => 0.25) < backoff(50, () => 0.75));
});

test("huge or odd attempt counts never give 0, NaN or Infinity", () => {
  for (const attempt of [10000, 1e6, Number.MAX_SAFE_INTEGER, Infinity, NaN, -5, 2.7, undefined]) {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const ms = backoff(attempt, () => r);
      assert.ok(Number.isFinite(ms), `attempt ${attempt}: ${ms}`);
      assert.ok(ms >= TIMING.BACKOFF_MIN && ms <= TIMING.BACKOFF_CAP, `attempt ${attempt}: ${ms}`);
    }
  }
});

test("a broken random source is clamped, not propagated", () => {
  for (const r of [NaN, -1, 2, undefined]) {
    const ms = backoff(3, () => r);
    assert.ok(ms >= TIMING.BACKOFF_MIN && ms <= 8000, String(ms));
  }
});

test("defaults to Math.random and stays in bounds", () => {
  for (let i = 0; i < 1000; i++) {
    const ms = backoff(i % 40);
    assert.ok(ms >= TIMING.BACKOFF_MIN && ms <= TIMING.BACKOFF_CAP);
  }
});

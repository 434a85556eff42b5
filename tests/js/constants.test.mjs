import assert from "node:assert/strict";
import { test } from "node:test";
import { CLOSE, ERR, STATE, TIMING, closeAction, closeReason } from "../../static/realtime/constants.js";

test("close codes match PROTOCOL.md", () => {
  assert.deepEqual(
    [CLOSE.NORMAL, CLOSE.GOING_AWAY, CLOSE.ABNORMAL, CLOSE.TOO_LARGE, CLOSE.SERVER_ERROR,
      CLOSE.SERVICE_RESTART, CLOSE.HEARTBEAT_TIMEOUT, CLOSE.RATE_LIMITED, CLOSE.NOT_SIGNED_IN,
      CLOSE.FORBIDDEN, CLOSE.PROTOCOL_VIOLATION, CLOSE.TRY_LATER, CLOSE.TOO_MANY_SOCKETS, CLOSE.BY_OPERATOR],
    [1000, 1001, 1006, 1009, 1011, 1012, 4008, 4029, 4501, 4503, 4509, 4013, 4030, 4510],
  );
  assert.equal(ERR.CLOSING, "closing");
});

test("4030 (too many dashboards) backs off and retries; 4510 (closed by an operator) stops", () => {
  assert.equal(closeAction(4030), "retry");
  assert.equal(closeReason(4030), "too_many_dashboards");
  assert.equal(closeAction(4510), "stop");
  assert.equal(closeReason(4510), "closed_by_operator");
  assert.equal(closeAction(4013), "retry");
  assert.equal(closeReason(4013), "try_later");
});

test("closeAction: terminal band and 1009 stop, 1012 restarts, the rest retry", () => {
  for (const code of [4500, 4501, 4503, 4509, 4999, 1009]) assert.equal(closeAction(code), "stop", code);
  assert.equal(closeAction(1012), "restart");
  for (const code of [1000, 1001, 1006, 1011, 4000, 4008, 4029, 4499, 3999, 5000, 1002]) {
    assert.equal(closeAction(code), "retry", code);
  }
});

test("closeReason names the terminal codes", () => {
  assert.equal(closeReason(4501), "signed_out");
  assert.equal(closeReason(4503), "forbidden");
  assert.equal(closeReason(4509), "protocol");
  assert.equal(closeReason(1009), "too_large");
  assert.equal(closeReason(4777), "terminal");
  assert.equal(closeReason(1012), "restart");
  assert.equal(closeReason(3123), "closed");
});

test("states and timings", () => {
  assert.deepEqual(Object.values(STATE).sort(), ["connecting", "offline", "open", "stopped", "waiting"]);
  assert.equal(TIMING.HEARTBEAT_INTERVAL, 25000);
  assert.equal(TIMING.IDLE_GRACE, 10000);
  assert.equal(TIMING.HANDSHAKE_TIMEOUT, 10000);
  assert.equal(TIMING.BACKOFF_CAP, 30000);
  assert.equal(TIMING.STABLE_UPTIME, 10000);
});

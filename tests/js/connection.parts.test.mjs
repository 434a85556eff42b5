// A sync in parts through the Connection: applied whole, once; a connection lost (or a part
// that does not fit) before the last part leaves the store where it was.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TIMING } from "../../static/realtime/constants.js";
import { harness, syncFrame, syncParts, task, upsert } from "./fakes.mjs";

const { HANDSHAKE_TIMEOUT } = TIMING;
const tasks = (n, version = 1) => Array.from({ length: n }, (_, i) => task(i + 1, version));
const warned = (h, pattern) => h.logger.lines.some(([level, ...args]) => level === "warn" && pattern.test(args.join(" ")));

/** Start, open the socket, and return it with a notification counter on the store. */
function opened(options) {
  const h = harness(options);
  const notes = [];
  h.store.subscribe((store) => notes.push([store.last, store.tasks.size]));
  h.conn.start();
  h.socket.open();
  return { h, ws: h.socket, notes };
}

describe("a sync in parts", () => {
  test("is applied only at the last part, in one notification, and only then is the link open", () => {
    const { h, ws, notes } = opened();
    const [p1, p2, p3] = syncParts({ epoch: "e1", seq: 30, tasks: tasks(9) }, 3);
    ws.receive(p1);
    ws.receive(p2);
    assert.deepEqual(notes, []);
    assert.equal(h.store.tasks.size, 0);
    assert.deepEqual([h.store.epoch, h.store.last], [null, null]);
    assert.equal(h.state, "connecting");
    ws.receive(p3);
    assert.deepEqual(notes, [[30, 9]]);
    assert.deepEqual([h.store.epoch, h.store.last], ["e1", 30]);
    assert.equal(h.state, "open");
  });

  test("a socket lost after part 1 of 3 leaves epoch and last as they were; the reconnect resumes from there", () => {
    const h = harness();
    const first = h.connect({ epoch: "e1", seq: 10, tasks: tasks(3) });
    first.receive(upsert(11, task(4)));
    first.serverClose(1006);
    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    const second = h.socket;
    second.open();
    assert.deepEqual(second.sentOfType("subscribe"), [{ type: "subscribe", since: 11, epoch: "e1" }]);
    const [p1] = syncParts({ epoch: "e1", seq: 40, reset: false, tasks: [task(1, 39), task(5, 40)], deleted: { tasks: [2], agents: [] } }, 3);
    second.receive(p1);
    second.serverClose(1006);
    assert.deepEqual([h.store.epoch, h.store.last], ["e1", 11]);
    assert.equal(h.store.tasks.get(1).version, 1, "part 1's rows were not applied");
    assert.equal(h.store.tasks.has(5), false);

    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    const third = h.socket;
    third.open();
    assert.deepEqual(third.sentOfType("subscribe"), [{ type: "subscribe", since: 11, epoch: "e1" }]);
    const again = syncParts({ epoch: "e1", seq: 41, reset: false, tasks: [task(1, 39), task(5, 41)], deleted: { tasks: [2], agents: [] } }, 3);
    third.receive(again[0]);
    third.receive(again[1]);
    assert.equal(h.store.last, 11, "the old socket's part 1 is not mixed in");
    third.receive(again[2]);
    assert.deepEqual([h.store.epoch, h.store.last], ["e1", 41]);
    assert.deepEqual([...h.store.tasks.keys()].sort(), [1, 3, 4, 5]);
    assert.equal(h.state, "open");
  });

  test("after a new socket, the old sync's later parts are strays, not a continuation", () => {
    const h = harness();
    h.conn.start();
    h.socket.open();
    const [p1, p2] = syncParts({ seq: 8, tasks: tasks(4) }, 2);
    h.socket.receive(p1);
    h.conn.retryNow();
    h.socket.open();
    h.socket.receive(p2); // as if the server had sent it on the new socket: no part 1 there
    assert.equal(h.store.last, null);
    assert.equal(h.state, "connecting");
    assert.ok(warned(h, /without part 1/));
  });

  test("the handshake timeout fires when the last part never comes; each part gives the rest more time", () => {
    const { h, ws } = opened();
    const [p1, p2] = syncParts({ seq: 8, tasks: tasks(6) }, 3);
    h.clock.advance(HANDSHAKE_TIMEOUT - 100);
    ws.receive(p1); // just in time: the deadline moves on
    h.clock.advance(HANDSHAKE_TIMEOUT - 100);
    ws.receive(p2);
    ws.receive({ type: "ping", id: 1, seq: 8 }); // pings keep the link alive but are no progress
    h.clock.advance(HANDSHAKE_TIMEOUT - 1);
    assert.equal(h.socket, ws);
    h.clock.advance(1);
    assert.equal(ws.attached, false);
    assert.equal(h.net.sockets.length, 2);
    assert.equal(h.store.last, null);
    h.socket.open();
    assert.deepEqual(h.socket.sentOfType("subscribe"), [{ type: "subscribe", since: null, epoch: null }]);
  });

  test("a resync in parts: the sync deadline holds until the last part; events in between are not applied", () => {
    const h = harness();
    const ws = h.connect({ epoch: "e1", seq: 5, tasks: tasks(2) });
    ws.receive(upsert(8, task(3))); // gap: resubscribe
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 5, epoch: "e1" });
    const [p1, p2] = syncParts({ epoch: "e1", seq: 9, reset: false, tasks: [task(3, 8), task(4, 9)] }, 2);
    ws.receive(p1);
    ws.receive(upsert(6, task(9)));
    ws.receive({ type: "events", items: [upsert(6, task(9))] });
    assert.equal(h.store.tasks.has(9), false, "not applied between parts");
    assert.ok(warned(h, /between the parts of a sync/));
    ws.receive({ type: "ping", id: 3, seq: 12 });
    assert.deepEqual(ws.sent.at(-1), { type: "pong", id: 3 }, "pinged between parts: answered, no resubscribe");
    assert.equal(ws.sentOfType("subscribe").length, 2);
    assert.equal(h.store.last, 5);
    ws.receive(p2);
    assert.equal(h.store.last, 9);
    assert.deepEqual([...h.store.tasks.keys()].sort(), [1, 2, 3, 4]);
    ws.receive(upsert(11, task(5))); // the event after the sync that was not applied shows as a gap
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 9, epoch: "e1" });
  });

  test("a resync whose last part never comes reconnects (sync timeout) and keeps the store", () => {
    const h = harness();
    const ws = h.connect({ epoch: "e1", seq: 5, tasks: tasks(2) });
    ws.receive({ type: "ping", id: 1, seq: 7 });
    ws.receive(syncParts({ epoch: "e1", seq: 7, reset: true, tasks: tasks(5, 7) }, 2)[0]);
    for (let i = 0; i < 3; i++) {
      h.clock.advance(HANDSHAKE_TIMEOUT / 4);
      ws.receive({ type: "ping", id: 2 + i, seq: 7 });
    }
    assert.equal(h.socket, ws);
    h.clock.advance(HANDSHAKE_TIMEOUT / 4);
    assert.equal(ws.attached, false);
    assert.equal(h.store.tasks.size, 2, "the reset was never half applied");
    assert.deepEqual([h.store.epoch, h.store.last], ["e1", 5]);
  });

  for (const [name, bad] of [
    ["another seq", (p) => ({ ...p, seq: p.seq + 1 })],
    ["another epoch", (p) => ({ ...p, epoch: "e9" })],
    ["another reset", (p) => ({ ...p, reset: !p.reset })],
    ["another part count", (p) => ({ ...p, parts: p.parts + 1 })],
    ["a part out of order", (p) => ({ ...p, part: 3 })],
  ]) {
    test(`a part with ${name} discards the staging; the deadline reconnects from where the store was`, () => {
      const { h, ws, notes } = opened();
      const frames = syncParts({ epoch: "e1", seq: 30, tasks: tasks(9) }, 3);
      ws.receive(frames[0]);
      ws.receive(bad(frames[1]));
      assert.ok(warned(h, /dropped the parts of a sync/));
      ws.receive(frames[2]); // the rest of the broken sync is not applied either
      assert.deepEqual(notes, []);
      assert.equal(h.store.last, null);
      assert.equal(ws.sentOfType("subscribe").length, 1, "no second subscribe on this socket");
      h.clock.advance(HANDSHAKE_TIMEOUT);
      assert.equal(ws.attached, false, "reconnected");
      h.socket.open();
      assert.deepEqual(h.socket.sentOfType("subscribe"), [{ type: "subscribe", since: null, epoch: null }]);
      for (const frame of syncParts({ epoch: "e1", seq: 31, tasks: tasks(9, 31) }, 3)) h.socket.receive(frame);
      assert.deepEqual(notes, [[31, 9]]);
      assert.equal(h.state, "open");
    });
  }

  test("a sync in one frame works as before", () => {
    const { h, ws, notes } = opened();
    ws.receive(syncFrame({ epoch: "e1", seq: 4, tasks: tasks(3), heartbeat_interval: 2 }));
    assert.deepEqual(notes, [[4, 3]]);
    assert.equal(h.state, "open");
    assert.equal(h.conn.status.interval, 2000);
    ws.receive(upsert(5, task(7)));
    assert.equal(h.store.last, 5);
  });

  test("the heartbeat interval of a sync in parts applies when it is whole", () => {
    const { h, ws } = opened();
    const [p1, p2] = syncParts({ seq: 4, tasks: tasks(2), heartbeat_interval: 3 }, 2);
    ws.receive(p1);
    assert.equal(h.conn.status.interval, TIMING.HEARTBEAT_INTERVAL);
    ws.receive(p2);
    assert.equal(h.conn.status.interval, 3000);
  });
});

describe("close codes 4030 and 4510, and the server's reason", () => {
  test("4030 (too many dashboards) backs off and retries, keeping the server's words", () => {
    const h = harness({ backoff: () => 4000 });
    h.conn.start();
    h.socket.open();
    h.socket.receive({ type: "error", code: "closing", close: 4030, message: "operator has 30 dashboards open already; close some and retry" });
    h.socket.serverClose(4030);
    assert.deepEqual(
      [h.state, h.conn.status.reason, h.conn.status.message, h.conn.status.retryAt],
      ["waiting", "too_many_dashboards", "operator has 30 dashboards open already; close some and retry", h.clock.now + 4000],
    );
    h.clock.advance(4000);
    assert.equal(h.state, "connecting");
    assert.equal(h.conn.status.message, null, "a new attempt clears the old reason");
  });

  test("4510 (closed by an operator) stops and keeps the server's words", () => {
    const h = harness();
    const ws = h.connect();
    ws.receive({ type: "error", code: "closing", close: 4510, message: "closed by an operator from the admin" });
    assert.equal(h.state, "open", "the error frame alone closes nothing");
    ws.serverClose(4510);
    assert.deepEqual([h.state, h.conn.status.reason, h.conn.status.message], ["stopped", "closed_by_operator", "closed by an operator from the admin"]);
    h.clock.advance(10 * 60 * 1000);
    assert.equal(h.net.sockets.length, 1);
    assert.ok(!warned(h, /rejected a frame/), "a closing notice is not a rejected frame");
  });

  test("a closing notice for another code, or from an older socket, is not shown", () => {
    const h = harness();
    const ws = h.connect();
    ws.receive({ type: "error", code: "closing", close: 4030, message: "too many" });
    ws.serverClose(1006); // the network went before the server's close
    assert.equal(h.conn.status.message, null);
    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    h.connect().serverClose(4501);
    assert.deepEqual([h.conn.status.reason, h.conn.status.message], ["signed_out", null]);
  });

  test("without a closing notice the close frame's own reason is kept", () => {
    const h = harness();
    const ws = h.connect();
    ws.readyState = 3;
    ws.onclose({ type: "close", code: 4503, reason: "permission removed", wasClean: true });
    assert.deepEqual([h.state, h.conn.status.reason, h.conn.status.message], ["stopped", "forbidden", "permission removed"]);
  });
});

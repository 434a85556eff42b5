import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Connection, dashboardUrl } from "../../static/realtime/connection.js";
import { TIMING } from "../../static/realtime/constants.js";
import { harness, syncFrame, task, upsert } from "./fakes.mjs";

const { HEARTBEAT_INTERVAL, IDLE_GRACE, HANDSHAKE_TIMEOUT, STABLE_UPTIME } = TIMING;
const DEADLINE = HEARTBEAT_INTERVAL + IDLE_GRACE;

/** A backoff that records its calls and returns a fixed delay. */
function spyBackoff(ms = 1234) {
  const calls = [];
  const fn = (attempt, random) => {
    calls.push(attempt);
    assert.equal(typeof random, "function");
    return ms;
  };
  return { fn, calls };
}

describe("URL and construction", () => {
  test("default URL follows the page: wss under https, ws otherwise", () => {
    assert.equal(dashboardUrl({ protocol: "https:", host: "dash.example:8443" }), "wss://dash.example:8443/ws/dashboard/");
    assert.equal(dashboardUrl({ protocol: "http:", host: "localhost:8000" }), "ws://localhost:8000/ws/dashboard/");
  });

  test("without a url option the constructor reads globalThis.location", () => {
    globalThis.location = { protocol: "https:", host: "h.example" };
    try {
      const h = harness({ url: undefined });
      h.conn.start();
      assert.equal(h.socket.url, "wss://h.example/ws/dashboard/");
    } finally {
      delete globalThis.location;
    }
  });

  test("no WebSocket and no location fail loudly with the fix", () => {
    assert.throws(() => new Connection({ url: "ws://x/", WebSocket: null, win: null, doc: null }), /options\.WebSocket/);
    assert.throws(() => new Connection({ WebSocket: class {}, win: null, doc: null }), /options\.url/);
  });

  test("initial status: stopped, nothing scheduled, no socket, no listeners", () => {
    const h = harness();
    assert.deepEqual(h.conn.status, {
      state: "stopped", attempt: 0, retryAt: null, reason: null, message: null, rtt: null,
      lastMessageAt: null, confirmedAt: null, epoch: null, last: null, interval: TIMING.HEARTBEAT_INTERVAL,
      view: null, viewPending: false, viewError: null,
    });
    assert.equal(h.clock.pending, 0);
    assert.equal(h.net.sockets.length, 0);
    assert.equal(h.win.count() + h.doc.count(), 0);
  });

  test("a WebSocket constructor that throws (bad URL) stops with a reason instead of looping", () => {
    const h = harness({ WebSocket: class { constructor() { throw new SyntaxError("bad url"); } } });
    h.conn.start();
    assert.equal(h.state, "stopped");
    assert.equal(h.conn.status.reason, "bad_url");
    assert.equal(h.clock.pending, 0);
  });
});

describe("subscribe and sync", () => {
  test("fresh start subscribes with nulls; open only after the sync", () => {
    const h = harness();
    h.conn.start();
    assert.equal(h.state, "connecting");
    h.socket.open();
    assert.deepEqual(h.socket.sent, [{ type: "subscribe", since: null, epoch: null }]);
    assert.equal(h.state, "connecting", "not live until the store holds the database");
    h.socket.receive(syncFrame({ seq: 4, tasks: [task(1, 4)] }));
    assert.equal(h.state, "open");
    assert.equal(h.store.tasks.get(1).version, 4);
    assert.equal(h.conn.status.last, 4);
    assert.equal(h.conn.status.epoch, "e1");
  });

  test("resume: after a reconnect the subscribe carries the last epoch and seq", () => {
    const h = harness();
    const first = h.connect({ epoch: "ep-7", seq: 5 });
    first.receive(upsert(6, task(1)));
    first.receive(upsert(7, task(2)));
    first.serverClose(1006);
    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    assert.notEqual(h.socket, first);
    h.socket.open();
    assert.deepEqual(h.socket.sentOfType("subscribe"), [{ type: "subscribe", since: 7, epoch: "ep-7" }]);
  });

  test("gap: resubscribe with since=last, only one outstanding, again after the sync", () => {
    const h = harness();
    const ws = h.connect({ seq: 5 });
    ws.receive(upsert(6, task(1)));
    ws.receive(upsert(9, task(2)));
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 6, epoch: "e1" });
    ws.receive(upsert(10, task(3)));
    ws.receive({ type: "ping", id: 1, seq: 10 });
    assert.equal(ws.sentOfType("subscribe").length, 2, "no second subscribe while one is outstanding");
    ws.receive(syncFrame({ seq: 10, reset: false, tasks: [task(2, 9), task(3, 10)] }));
    assert.equal(h.store.last, 10);
    ws.receive(upsert(12, task(4)));
    assert.equal(ws.sentOfType("subscribe").length, 3);
    assert.equal(h.state, "open");
  });

  test("events batch frame goes through the store; a gap inside it resubscribes", () => {
    const h = harness();
    const ws = h.connect({ seq: 5 });
    ws.receive({ type: "events", items: [upsert(6, task(1)), upsert(7, task(2))] });
    assert.equal(h.store.last, 7);
    assert.equal(ws.sentOfType("subscribe").length, 1);
    ws.receive({ type: "events", items: [upsert(8, task(3)), upsert(11, task(4))] });
    assert.equal(h.store.last, 8);
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 8, epoch: "e1" });
  });

  test("duplicate event is ignored and does not resubscribe", () => {
    const h = harness();
    const ws = h.connect({ seq: 5, tasks: [task(1, 5, { title: "current" })] });
    ws.receive({ type: "event", seq: 5, entity: "task", op: "upsert", data: task(1, 5, { title: "replay" }) });
    ws.receive({ type: "event", seq: 2, entity: "task", op: "delete", data: { id: 1 } });
    assert.equal(h.store.tasks.get(1).title, "current");
    assert.equal(ws.sentOfType("subscribe").length, 1);
  });

  test("a row never regresses to an older version through the connection", () => {
    const h = harness();
    const ws = h.connect({ seq: 5, tasks: [task(1, 5, { title: "v5" })] });
    ws.receive({ type: "event", seq: 6, entity: "task", op: "upsert", data: task(1, 3, { title: "v3" }) });
    assert.equal(h.store.tasks.get(1).title, "v5");
    assert.equal(h.store.last, 6);
  });

  test("a resubscribe that is never answered reconnects after the handshake timeout", () => {
    const h = harness();
    const ws = h.connect({ seq: 5 });
    h.clock.advance(1000);
    ws.receive(upsert(9, task(1))); // gap -> subscribe
    h.clock.advance(HANDSHAKE_TIMEOUT - 1);
    assert.equal(h.socket, ws);
    h.clock.advance(1);
    assert.notEqual(h.socket, ws, "a stuck resync must not leave the gap open forever");
    assert.equal(ws.attached, false);
  });

  test("garbage, unknown types and error frames are survived", () => {
    const h = harness();
    const ws = h.connect({ seq: 1 });
    ws.receive("{not json");
    ws.receive({ type: "future_thing", x: 1 });
    ws.receive({ type: "error", code: "bad_field", message: "since must be an integer" });
    ws.receive({ type: "sync", seq: 2, tasks: 42 }); // malformed: logged, not thrown
    assert.equal(h.state, "open");
    assert.ok(h.logger.lines.some(([level, msg]) => level === "warn" && /bad_field/.test(msg)));
  });
});

describe("heartbeat", () => {
  test("server ping gets a pong at once; seq > last resubscribes, seq == last does not", () => {
    const h = harness();
    const ws = h.connect({ seq: 5 });
    ws.receive({ type: "ping", id: 41, seq: 5 });
    assert.deepEqual(ws.sent.at(-1), { type: "pong", id: 41 });
    assert.equal(ws.sentOfType("subscribe").length, 1);
    ws.receive({ type: "ping", id: 42, seq: 8 });
    assert.deepEqual(ws.sent.slice(-2), [{ type: "pong", id: 42 }, { type: "subscribe", since: 5, epoch: "e1" }]);
  });

  test("a ping from another epoch resubscribes (with the old epoch) even when its seq is lower", () => {
    const h = harness();
    const ws = h.connect({ epoch: "e1", seq: 50 });
    ws.receive({ type: "ping", id: 1, seq: 50, epoch: "e1" });
    assert.equal(ws.sentOfType("subscribe").length, 1, "same epoch, same seq: nothing missed");
    ws.receive({ type: "ping", id: 2, seq: 3, epoch: "e2" });
    assert.deepEqual(ws.sent.slice(-2), [{ type: "pong", id: 2 }, { type: "subscribe", since: 50, epoch: "e1" }]);
    ws.receive({ type: "ping", id: 3, seq: 3, epoch: "e2" });
    assert.equal(ws.sentOfType("subscribe").length, 2, "one resubscribe outstanding at a time");
    ws.receive(syncFrame({ epoch: "e2", seq: 3, reset: true, tasks: [task(1, 3)] }));
    assert.equal(h.store.epoch, "e2");
    assert.deepEqual([...h.store.tasks.keys()], [1]);
    ws.receive({ type: "ping", id: 4, seq: 3, epoch: "e2" });
    assert.equal(ws.sentOfType("subscribe").length, 2, "caught up with the new epoch");
  });

  test("a ping without an epoch (older server) only compares seq", () => {
    const h = harness();
    const ws = h.connect({ epoch: "e1", seq: 5 });
    ws.receive({ type: "ping", id: 1, seq: 5 });
    ws.receive({ type: "ping", id: 2, seq: 5, epoch: null });
    assert.equal(ws.sentOfType("subscribe").length, 1);
  });

  test("firstPingDelay brings the first client ping (and rtt) forward; later ones keep the interval", () => {
    const h = harness({ firstPingDelay: 500 });
    const ws = h.connect();
    h.clock.advance(499);
    assert.equal(ws.sentOfType("ping").length, 0);
    h.clock.advance(1);
    const ping = ws.sentOfType("ping").at(-1);
    h.clock.advance(12);
    ws.receive({ type: "pong", id: ping.id });
    assert.equal(h.conn.status.rtt, 12);
    h.clock.advance(HEARTBEAT_INTERVAL - 13);
    assert.equal(ws.sentOfType("ping").length, 1);
    h.clock.advance(1);
    assert.equal(ws.sentOfType("ping").length, 2);
  });

  test("status.interval reports the heartbeat interval in ms, as the server set it", () => {
    const h = harness();
    assert.equal(h.conn.status.interval, HEARTBEAT_INTERVAL);
    h.connect({ heartbeat_interval: 2 });
    assert.equal(h.conn.status.interval, 2000);
  });

  test("client pings every interval and measures rtt from the matching pong", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.advance(HEARTBEAT_INTERVAL);
    const ping = ws.sentOfType("ping").at(-1);
    assert.deepEqual(ping, { type: "ping", id: ping.id });
    h.clock.advance(40);
    ws.receive({ type: "pong", id: ping.id + 100 }); // not ours: ignored
    assert.equal(h.conn.status.rtt, null);
    ws.receive({ type: "pong", id: ping.id });
    assert.equal(h.conn.status.rtt, 40);
    assert.equal(h.statuses.at(-1).rtt, 40);
    h.clock.advance(HEARTBEAT_INTERVAL);
    assert.equal(ws.sentOfType("ping").length, 2);
  });

  test("the sync's heartbeat_interval (seconds) sets ping cadence and dead-man deadline", () => {
    const h = harness();
    const ws = h.connect({ heartbeat_interval: 5 });
    h.clock.advance(5000);
    assert.equal(ws.sentOfType("ping").length, 1);
    h.clock.advance(5000 + IDLE_GRACE - 5000 - 1); // 1 ms before 5 s + grace
    assert.equal(h.socket, ws);
    h.clock.advance(1);
    assert.notEqual(h.socket, ws);
  });

  test("dead-man: nothing inbound for interval + grace closes and reconnects", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.advance(DEADLINE - 1);
    assert.equal(h.socket, ws);
    h.clock.advance(1);
    assert.equal(ws.attached, false);
    assert.equal(ws.closeCalls.length, 1);
    assert.equal(h.net.sockets.length, 2, "a silent link is replaced at once");
    assert.equal(h.state, "connecting");
  });

  test("any inbound frame resets the dead-man deadline", () => {
    const h = harness();
    const ws = h.connect();
    for (let i = 0; i < 10; i++) {
      h.clock.advance(DEADLINE - 1000);
      ws.receive({ type: "future_thing" });
    }
    assert.equal(h.net.sockets.length, 1);
    assert.equal(h.clock.pending, 1);
  });

  test("throttled timer fires late but frames arrived meanwhile: no false teardown", () => {
    const h = harness();
    const ws = h.connect({ seq: 1 });
    h.hide();
    // A hidden tab: timers run once a minute, but server pings are delivered on time.
    for (let t = 0; t < 6; t++) {
      h.clock.jump(HEARTBEAT_INTERVAL);
      ws.receive({ type: "ping", id: t, seq: 1 });
      if (t % 2) h.clock.runDue(); // a late timer finally runs
    }
    assert.equal(h.socket, ws);
    assert.equal(h.state, "open");
    assert.equal(h.clock.pending, 1);
  });

  test("a timer firing early does nothing but re-arm", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.advance(HEARTBEAT_INTERVAL + 1); // first ping sent; next due is the deadline area
    for (let i = 0; i < 5; i++) h.clock.fireNext();
    assert.equal(h.socket, ws);
    assert.equal(h.clock.pending, 1);
  });

  test("a late timer after the deadline passed (no frames) reconnects", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.jump(DEADLINE + 60000); // laptop slept
    assert.equal(h.socket, ws, "nothing happens until something looks at the clock");
    h.clock.runDue();
    assert.equal(ws.attached, false);
    assert.equal(h.net.sockets.length, 2);
  });

  for (const [name, wake] of [
    ["focus", (h) => h.win.dispatch("focus")],
    ["visibilitychange to visible", (h) => h.show()],
    ["pageshow", (h) => h.win.dispatch("pageshow", { persisted: false })],
    ["online", (h) => h.win.dispatch("online")],
  ]) {
    test(`${name} after the deadline passed reconnects at once`, () => {
      const h = harness();
      const ws = h.connect();
      h.clock.jump(DEADLINE + 1);
      wake(h);
      assert.equal(ws.attached, false);
      assert.equal(h.net.sockets.length, 2);
      assert.equal(h.state, "connecting");
    });
  }

  test("focus before the deadline changes nothing", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.jump(DEADLINE - 1);
    h.win.dispatch("focus");
    h.show();
    assert.equal(h.socket, ws);
    assert.equal(h.state, "open");
  });

  test("send() into a link that is already past its deadline reconnects and returns false", () => {
    const h = harness();
    const ws = h.connect();
    h.clock.jump(DEADLINE);
    assert.equal(h.conn.send({ type: "ping", id: 99 }), false);
    assert.equal(ws.attached, false);
    assert.equal(h.state, "connecting");
  });
});

describe("handshake timeout", () => {
  test("a socket stuck in CONNECTING is replaced after 10 s", () => {
    const h = harness();
    h.conn.start();
    const hung = h.socket;
    h.clock.advance(HANDSHAKE_TIMEOUT - 1);
    assert.equal(h.net.sockets.length, 1);
    h.clock.advance(1);
    assert.equal(hung.attached, false, "handlers detached");
    assert.equal(hung.closeCalls.length, 1, "close attempted");
    assert.equal(h.net.sockets.length, 2);
    assert.equal(h.state, "connecting");
    assert.equal(h.conn.status.attempt, 1);
    hung.open(); // the old handshake completing late must not matter
    hung.receive(syncFrame({ seq: 99 }));
    assert.equal(h.store.last, null);
    assert.deepEqual(hung.sent, []);
  });

  test("a socket that opens but never syncs is replaced too", () => {
    const h = harness();
    h.conn.start();
    const ws = h.socket;
    ws.open();
    h.clock.advance(HANDSHAKE_TIMEOUT);
    assert.equal(ws.attached, false);
    assert.equal(h.net.sockets.length, 2);
  });

  test("close() throwing on a CONNECTING socket is tolerated", () => {
    const h = harness();
    h.conn.start();
    h.socket.close = () => { throw new Error("Safari says no"); };
    h.clock.advance(HANDSHAKE_TIMEOUT);
    assert.equal(h.net.sockets.length, 2);
  });

  test("when the backoff is longer than the time already waited, the remainder is waited", () => {
    const spy = spyBackoff(25000);
    const h = harness({ backoff: spy.fn });
    h.conn.start();
    h.clock.advance(HANDSHAKE_TIMEOUT);
    assert.equal(h.state, "waiting");
    assert.equal(h.conn.status.retryAt, h.clock.now + 25000 - HANDSHAKE_TIMEOUT);
    h.clock.advance(25000 - HANDSHAKE_TIMEOUT);
    assert.equal(h.net.sockets.length, 2);
  });
});

describe("close codes", () => {
  for (const [code, reason] of [[4501, "signed_out"], [4503, "forbidden"], [4509, "protocol"], [4510, "closed_by_operator"], [1009, "too_large"], [4900, "terminal"]]) {
    test(`${code} stops with reason ${reason} and never retries`, () => {
      const spy = spyBackoff();
      const h = harness({ backoff: spy.fn });
      const ws = h.connect();
      ws.serverClose(code);
      assert.equal(h.state, "stopped");
      assert.equal(h.conn.status.reason, reason);
      assert.equal(h.clock.pending, 0);
      h.win.dispatch("online");
      h.show();
      h.win.dispatch("focus");
      h.win.dispatch("pageshow", { persisted: true });
      h.clock.advance(10 * 60 * 1000);
      assert.equal(h.net.sockets.length, 1);
      assert.deepEqual(spy.calls, []);
      assert.equal(h.win.count() + h.doc.count(), 0, "page listeners removed while stopped");
    });
  }

  test("terminal close during the handshake (anonymous user) stops without flashing open", () => {
    const h = harness();
    h.conn.start();
    h.socket.open();
    h.socket.serverClose(4501);
    assert.deepEqual(h.statuses.map((s) => s.state), ["connecting", "stopped"]);
  });

  test("retryNow after a terminal close (signed in again) connects", () => {
    const h = harness();
    h.connect().serverClose(4501);
    h.conn.retryNow();
    assert.equal(h.state, "connecting");
    assert.equal(h.net.sockets.length, 2);
    assert.equal(h.conn.status.reason, null);
  });

  test("1012 waits base + random(0..5000) and does not use the backoff", () => {
    for (const r of [0, 0.5, 0.999]) {
      const spy = spyBackoff();
      const h = harness({ backoff: spy.fn, random: () => r });
      h.connect().serverClose(1012);
      const delay = h.conn.status.retryAt - h.clock.now;
      assert.equal(delay, TIMING.RESTART_BASE + r * TIMING.RESTART_SPREAD);
      assert.equal(h.conn.status.reason, "restart");
      assert.deepEqual(spy.calls, []);
      h.clock.advance(delay - 1);
      assert.equal(h.net.sockets.length, 1);
      h.clock.advance(1);
      assert.equal(h.net.sockets.length, 2);
    }
  });

  test("1012 comes back within the spread the restarting server asks for (a lone page at once, many spread out)", () => {
    for (const [within, r] of [[0.5, 0.999], [5, 0.5], [30, 0.25]]) {
      const h = harness({ random: () => r });
      const socket = h.connect();
      socket.receive({ type: "error", code: "closing", close: 1012, message: "the server is restarting", retry_within: within });
      socket.serverClose(1012);
      assert.equal(h.conn.status.retryAt - h.clock.now, TIMING.RESTART_BASE + r * within * 1000);
    }
    const h = harness({ random: () => 0.5 }); // a nonsense spread falls back to the default one
    const socket = h.connect();
    socket.receive({ type: "error", code: "closing", close: 1012, message: "x", retry_within: "soon" });
    socket.serverClose(1012);
    assert.equal(h.conn.status.retryAt - h.clock.now, TIMING.RESTART_BASE + 0.5 * TIMING.RESTART_SPREAD);
  });

  for (const code of [4008, 4013, 4029, 4030, 1006, 1000, 1001, 1011, 4000, 4499]) {
    test(`${code} reconnects with backoff`, () => {
      const spy = spyBackoff(1234);
      const h = harness({ backoff: spy.fn });
      h.connect().serverClose(code);
      assert.equal(h.state, "waiting");
      assert.deepEqual(spy.calls, [0]);
      assert.equal(h.conn.status.retryAt, h.clock.now + 1234);
      assert.equal(h.clock.pending, 1);
      h.clock.advance(1233);
      assert.equal(h.net.sockets.length, 1);
      h.clock.advance(1);
      assert.equal(h.net.sockets.length, 2);
      assert.equal(h.state, "connecting");
    });
  }

  test("error followed by close is one failure, not two", () => {
    const spy = spyBackoff();
    const h = harness({ backoff: spy.fn });
    h.conn.start();
    h.socket.fail();
    assert.deepEqual(spy.calls, [0]);
    assert.equal(h.conn.status.reason, "abnormal");
    assert.equal(h.clock.pending, 1);
  });

  test("retries are unlimited and the attempt passed to backoff keeps growing", () => {
    const spy = spyBackoff(500);
    const h = harness({ backoff: spy.fn });
    h.conn.start();
    for (let i = 0; i < 200; i++) {
      h.socket.fail();
      h.clock.advance(500);
    }
    assert.equal(spy.calls.length, 200);
    assert.equal(spy.calls.at(-1), 199);
    assert.equal(h.state, "connecting");
  });

  test("the real backoff schedule stays within bounds over many failures", () => {
    const h = harness({ random: Math.random });
    h.conn.start();
    for (let i = 0; i < 100; i++) {
      h.socket.fail();
      const delay = h.conn.status.retryAt - h.clock.now;
      assert.ok(delay >= TIMING.BACKOFF_MIN && delay <= TIMING.BACKOFF_CAP, String(delay));
      h.clock.advance(delay);
    }
  });
});

describe("attempt counter", () => {
  test("resets only after 10 s open and synced", () => {
    const spy = spyBackoff(100);
    const h = harness({ backoff: spy.fn });
    h.conn.start();
    h.socket.fail();
    h.clock.advance(100);
    h.socket.fail();
    h.clock.advance(100);
    assert.equal(h.conn.status.attempt, 2);
    h.socket.open(); // open but not synced: does not count as stable
    h.clock.advance(HANDSHAKE_TIMEOUT - 1);
    assert.equal(h.conn.status.attempt, 2);
    h.socket.receive(syncFrame());
    h.clock.advance(STABLE_UPTIME - 1);
    assert.equal(h.conn.status.attempt, 2);
    h.socket.serverClose(1006); // flapped before 10 s: the backoff keeps climbing
    assert.deepEqual(spy.calls, [0, 1, 2]);
    h.clock.advance(100);
    h.connect();
    h.clock.advance(STABLE_UPTIME);
    assert.equal(h.conn.status.attempt, 0);
    assert.equal(h.statuses.at(-1).attempt, 0);
    h.socket.serverClose(1006);
    assert.deepEqual(spy.calls, [0, 1, 2, 0]);
  });
});

describe("retryNow, start and stop", () => {
  test("retryNow from waiting cancels the timer, resets attempts and connects at once", () => {
    const h = harness({ backoff: () => 20000 });
    h.conn.start();
    h.socket.fail();
    h.clock.advance(20000);
    h.socket.fail();
    assert.equal(h.conn.status.attempt, 2);
    h.conn.retryNow();
    assert.equal(h.state, "connecting");
    assert.equal(h.conn.status.attempt, 0);
    assert.equal(h.conn.status.retryAt, null);
    assert.equal(h.net.sockets.length, 3);
    assert.equal(h.clock.pending, 1, "only the handshake deadline is pending");
  });

  test("retryNow while connecting replaces the socket; while open, reconnects too", () => {
    const h = harness();
    h.conn.start();
    const first = h.socket;
    h.conn.retryNow();
    assert.equal(first.attached, false);
    const ws = h.connect();
    h.conn.retryNow();
    assert.equal(ws.attached, false);
    assert.equal(h.net.live.length, 1);
  });

  test("start is idempotent while running", () => {
    const h = harness();
    h.conn.start();
    h.conn.start();
    assert.equal(h.net.sockets.length, 1);
  });

  test("stop never auto-reconnects: not on time, visibility, focus or online", () => {
    const h = harness();
    const ws = h.connect();
    h.conn.stop();
    assert.equal(h.state, "stopped");
    assert.equal(h.conn.status.reason, "user");
    assert.equal(ws.attached, false);
    assert.deepEqual(ws.closeCalls.map((c) => c.code), [1000]);
    h.win.dispatch("online");
    h.win.dispatch("focus");
    h.win.dispatch("pageshow", { persisted: true });
    h.show();
    h.clock.advance(60 * 60 * 1000);
    assert.equal(h.net.sockets.length, 1);
    assert.equal(h.clock.pending, 0);
    h.conn.start();
    assert.equal(h.net.sockets.length, 2);
  });

  test("stop while waiting cancels the retry", () => {
    const h = harness();
    h.conn.start();
    h.socket.fail();
    h.conn.stop();
    assert.equal(h.clock.pending, 0);
    h.clock.advance(60000);
    assert.equal(h.net.sockets.length, 1);
  });
});

describe("online, offline and visibility", () => {
  test("offline closes the socket and schedules nothing; online connects at once with a fresh backoff", () => {
    const h = harness();
    const ws = h.connect();
    h.win.navigator.onLine = false;
    h.win.dispatch("offline");
    assert.equal(h.state, "offline");
    assert.equal(h.conn.status.reason, "offline");
    assert.equal(ws.attached, false);
    assert.equal(h.clock.pending, 0);
    h.clock.advance(10 * 60 * 1000);
    h.win.dispatch("focus");
    assert.equal(h.net.sockets.length, 1);
    h.win.navigator.onLine = true;
    h.win.dispatch("online");
    assert.equal(h.state, "connecting");
    assert.equal(h.conn.status.attempt, 0);
    assert.equal(h.net.sockets.length, 2);
  });

  test("offline while waiting drops the scheduled retry", () => {
    const h = harness();
    h.conn.start();
    h.socket.fail();
    assert.equal(h.clock.pending, 1);
    h.win.dispatch("offline");
    assert.equal(h.clock.pending, 0);
    assert.equal(h.conn.status.retryAt, null);
  });

  test("becoming visible while offline reconnects only if the browser is back online", () => {
    const h = harness();
    h.connect();
    h.win.navigator.onLine = false;
    h.win.dispatch("offline");
    h.hide();
    h.show();
    assert.equal(h.state, "offline");
    h.win.navigator.onLine = true;
    h.hide();
    h.show();
    assert.equal(h.state, "connecting");
  });

  test("waiting + visible or online: connect at once, attempt reset", () => {
    for (const wake of [(h) => h.show(), (h) => h.win.dispatch("online"), (h) => h.win.dispatch("pageshow", { persisted: true })]) {
      const h = harness({ backoff: () => 20000 });
      h.conn.start();
      h.socket.fail();
      h.clock.advance(20000);
      h.socket.fail();
      h.hide();
      wake(h);
      assert.equal(h.state, "connecting");
      assert.equal(h.conn.status.attempt, 0);
      assert.equal(h.net.sockets.length, 3);
    }
  });

  test("waiting + focus: connects only once retryAt has passed (timer was throttled)", () => {
    const h = harness({ backoff: () => 5000 });
    h.conn.start();
    h.socket.fail();
    h.clock.jump(4999);
    h.win.dispatch("focus");
    assert.equal(h.state, "waiting");
    h.clock.jump(1);
    h.win.dispatch("focus");
    assert.equal(h.state, "connecting");
    assert.equal(h.clock.pending, 1);
  });

  test("hidden does nothing", () => {
    const h = harness();
    const ws = h.connect();
    h.hide();
    assert.equal(h.socket, ws);
    assert.equal(h.state, "open");
  });
});

describe("send", () => {
  test("returns false while closed and never throws", () => {
    const h = harness();
    assert.equal(h.conn.send({ type: "ping", id: 1 }), false);
    h.conn.start();
    assert.equal(h.conn.send({ type: "ping", id: 1 }), false, "still CONNECTING");
    h.socket.fail();
    assert.equal(h.conn.send({ type: "ping", id: 1 }), false);
  });

  test("returns true when open; false for unserialisable input or a throwing socket", () => {
    const h = harness();
    const ws = h.connect();
    assert.equal(h.conn.send({ type: "ping", id: 7 }), true);
    assert.deepEqual(ws.sent.at(-1), { type: "ping", id: 7 });
    const cyclic = {};
    cyclic.self = cyclic;
    assert.equal(h.conn.send(cyclic), false);
    assert.equal(h.conn.send({ big: 1n }), false);
    ws.send = () => { throw new Error("boom"); };
    assert.equal(h.conn.send({ type: "ping", id: 8 }), false);
  });
});

describe("stale sockets and callbacks", () => {
  test("callbacks of an old socket (older generation) are ignored", () => {
    const h = harness();
    const old = h.connect({ seq: 5 });
    const stale = { onopen: old.onopen, onmessage: old.onmessage, onerror: old.onerror, onclose: old.onclose };
    old.serverClose(1006);
    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    const fresh = h.connect({ seq: 5 });
    const before = { ...h.conn.status };
    stale.onmessage({ data: JSON.stringify(upsert(6, task(1))) });
    stale.onmessage({ data: JSON.stringify(syncFrame({ seq: 100, epoch: "other" })) });
    stale.onopen({});
    stale.onerror({ type: "error" });
    stale.onclose({ type: "close", code: 4501 });
    assert.deepEqual(h.conn.status, before);
    assert.equal(h.store.last, 5);
    assert.equal(h.socket, fresh);
    assert.equal(fresh.attached, true);
    assert.equal(h.clock.pending, 1);
  });

  test("a replaced socket's handlers are detached", () => {
    const h = harness();
    h.conn.start();
    const a = h.socket;
    h.conn.retryNow();
    assert.equal(a.attached, false);
    assert.equal(h.net.live.length, 1);
  });

  test("page listeners are added once, however many reconnects", () => {
    const h = harness();
    h.conn.start();
    for (let i = 0; i < 20; i++) {
      h.socket.fail();
      h.conn.retryNow();
    }
    assert.equal(h.win.count(), 4);
    assert.equal(h.doc.count(), 1);
  });
});

describe("status", () => {
  test("onStatus gets the documented shape; a throwing onStatus is contained", () => {
    let calls = 0;
    const h = harness({ onStatus: () => { calls++; throw new Error("ui bug"); } });
    h.connect({ seq: 3, epoch: "z" });
    assert.ok(calls >= 2);
    assert.equal(h.state, "open");
    const s = h.conn.status;
    assert.deepEqual(Object.keys(s).sort(), [
      "attempt", "confirmedAt", "epoch", "interval", "last", "lastMessageAt", "message", "reason", "retryAt", "rtt",
      "state", "view", "viewError", "viewPending",
    ]);
    assert.equal(s.epoch, "z");
    assert.equal(s.last, 3);
    assert.equal(s.lastMessageAt, h.clock.now);
  });

  test("waiting exposes retryAt as a clock value", () => {
    const h = harness({ backoff: () => 4000 });
    h.clock.jump(1_000_000);
    h.connect().serverClose(4029);
    assert.deepEqual(
      { state: h.statuses.at(-1).state, retryAt: h.statuses.at(-1).retryAt, reason: h.statuses.at(-1).reason },
      { state: "waiting", retryAt: 1_004_000, reason: "rate_limited" },
    );
  });
});

// The Connection's parts on their own: the Heartbeat, the PageWake, the SyncSession and the
// HealthProbe. (Through the Connection: connection.test.mjs, connection.views.test.mjs.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TIMING } from "../../static/realtime/constants.js";
import { Heartbeat } from "../../static/realtime/heartbeat.js";
import { PageWake } from "../../static/realtime/pagewake.js";
import { HealthProbe } from "../../static/realtime/probe.js";
import { SyncSession } from "../../static/realtime/session.js";
import { FakeTarget, syncFrame, syncParts, task } from "./fakes.mjs";

describe("Heartbeat", () => {
  test("the dead-man deadline follows the last frame; the server's interval replaces the default", () => {
    const beat = new Heartbeat({ interval: 25000, grace: 10000 });
    beat.received(1000);
    assert.equal(beat.deadline, 36000);
    assert.equal(beat.silence, 35000);
    beat.adopt(2);
    assert.equal(beat.deadline, 13000);
    beat.adopt(0.01);
    assert.equal(beat.interval, TIMING.MIN_HEARTBEAT_INTERVAL, "a busy loop is refused");
    beat.adopt("nonsense");
    assert.equal(beat.interval, TIMING.MIN_HEARTBEAT_INTERVAL);
  });

  test("pings when due, once per interval; the matching pong gives the round trip", () => {
    const beat = new Heartbeat({ interval: 5000, grace: 1000, firstPingDelay: 500 });
    const sent = [];
    const send = (frame) => sent.push(frame) > 0;
    beat.start(0);
    assert.equal(beat.nextPingAt, 500);
    beat.pingIfDue(499, send);
    assert.equal(sent.length, 0);
    beat.pingIfDue(500, send);
    assert.deepEqual(sent, [{ type: "ping", id: 1 }]);
    assert.equal(beat.nextPingAt, 5500);
    assert.equal(beat.ponged(7, 520), false, "someone else's pong");
    assert.equal(beat.ponged(1, 540), true);
    assert.equal(beat.rtt, 40);
    assert.equal(beat.ponged(1, 600), false, "answered once");
  });

  test("a ping that could not be sent, or a socket that went, expects no pong", () => {
    const beat = new Heartbeat({ interval: 5000, grace: 1000 });
    beat.start(0);
    beat.pingIfDue(5000, () => false);
    assert.equal(beat.ponged(1, 5001), false);
    beat.pingIfDue(10000, () => true);
    beat.stop();
    assert.equal(beat.ponged(2, 10001), false);
    assert.equal(beat.rtt, null);
  });
});

describe("PageWake", () => {
  const make = () => {
    const win = new FakeTarget();
    win.navigator = { onLine: true };
    const doc = new FakeTarget();
    doc.visibilityState = "visible";
    const calls = [];
    const wake = new PageWake({ win, doc, onOffline: () => calls.push("offline"), onWake: (r) => calls.push(r ? "back" : "check") });
    return { win, doc, calls, wake };
  };

  test("listens only when asked, once, and says what each event means", () => {
    const { win, doc, calls, wake } = make();
    win.dispatch("online");
    assert.deepEqual(calls, []);
    wake.listen(true);
    wake.listen(true);
    assert.equal(win.count() + doc.count(), 5);
    win.dispatch("offline");
    win.dispatch("online");
    win.dispatch("focus");
    win.dispatch("pageshow", { persisted: false });
    win.dispatch("pageshow", { persisted: true });
    doc.visibilityState = "hidden";
    doc.dispatch("visibilitychange");
    doc.visibilityState = "visible";
    doc.dispatch("visibilitychange");
    assert.deepEqual(calls, ["offline", "back", "check", "check", "back", "back"]);
    wake.listen(false);
    assert.equal(win.count() + doc.count(), 0);
  });

  test("visible and online read the page; without a page, both are true", () => {
    const { win, doc, wake } = make();
    assert.equal(wake.visible && wake.online, true);
    doc.visibilityState = "hidden";
    win.navigator.onLine = false;
    assert.equal(wake.visible || wake.online, false);
    const bare = new PageWake({ win: null, doc: null, onOffline() {}, onWake() {} });
    assert.equal(bare.visible && bare.online, true);
    bare.listen(true); // nothing to listen to: no throw
  });
});

describe("SyncSession", () => {
  const store = (fields = {}) => ({ last: null, epoch: null, fp: null, ...fields });
  const view = { status: ["failed"], limit: 50, current: true };

  test("the subscribe carries the position, the fingerprint when known, and the view when there is one", () => {
    const session = new SyncSession({ timeout: 1000 });
    assert.deepEqual(session.frame(store()), { type: "subscribe", since: null, epoch: null });
    assert.deepEqual(session.frame(store({ last: 4, epoch: "e", fp: "f4" })), { type: "subscribe", since: 4, epoch: "e", fp: "f4" });
    const windowed = new SyncSession({ view, timeout: 1000 });
    assert.deepEqual(windowed.frame(store({ last: 4, epoch: "e" })), { type: "subscribe", since: 4, epoch: "e", view });
  });

  test("one subscribe outstanding; its deadline starts with the socket, or with a resync", () => {
    const session = new SyncSession({ timeout: 1000 });
    session.begin(50);
    assert.equal(session.deadline, 1050);
    session.sent(60, false);
    assert.equal(session.busy, true);
    assert.equal(session.deadline, 1050, "the first sync is due by the socket's deadline");
    assert.equal(session.take(syncFrame(), 70).status, "whole");
    session.answered();
    assert.deepEqual([session.busy, session.deadline], [false, null]);
    session.sent(2000, true);
    assert.equal(session.deadline, 3000);
    session.end();
    assert.deepEqual([session.busy, session.deadline], [false, null]);
  });

  test("each part gives the rest another timeout; staging counts as busy", () => {
    const session = new SyncSession({ timeout: 1000 });
    session.begin(0);
    const [p1, p2] = syncParts({ tasks: [task(1, 1), task(2, 1)] }, 2);
    assert.equal(session.take(p1, 600).status, "staged");
    assert.equal(session.deadline, 1600);
    assert.equal(session.busy, true);
    assert.equal(session.take(p2, 700).status, "whole");
  });

  test("a new view: ask at once when idle; when a subscribe is out, drop its answer and ask again", () => {
    const session = new SyncSession({ timeout: 1000 });
    session.begin(0);
    assert.equal(session.setView(view), true);
    assert.equal(session.changing, true);
    session.sent(10, false);
    assert.equal(session.setView({ ...view, limit: 100 }), false, "one outstanding: wait for its answer");
    assert.equal(session.take(syncFrame({ seq: 3 }), 20).status, "again");
    assert.deepEqual([session.busy, session.changing], [false, true]);
    session.sent(30, true);
    assert.equal(session.take(syncFrame({ seq: 4 }), 40).status, "whole");
    session.answered();
    assert.equal(session.changing, false);
    assert.equal(session.view.limit, 100);
  });

  test("a refused view goes back to the one the store holds", () => {
    const session = new SyncSession({ view, timeout: 1000 });
    session.begin(0);
    session.setView({ limit: 5000 });
    session.sent(1, false);
    session.refused(view);
    assert.deepEqual([session.view, session.busy, session.changing], [view, false, false]);
  });
});

describe("HealthProbe", () => {
  /** A probe with a scripted fetch: `answers` are resolved in order by `answer(ok)`. */
  function make({ ready = () => true } = {}) {
    let now = 0;
    const calls = [];
    const pending = [];
    const events = [];
    const probe = new HealthProbe({
      url: "http://h.invalid/healthz", now: () => now, random: () => 0.5, ready,
      fetch: (url, init) => {
        calls.push([url, init]);
        return new Promise((resolve, reject) => pending.push({ resolve, reject }));
      },
      onUp: () => events.push("up"), onChange: () => events.push("change"),
      controller: () => ({ signal: "s", abort: () => events.push("abort") }),
    });
    return {
      probe, calls, events,
      set now(ms) { now = ms; },
      get now() { return now; },
      async answer(ok) {
        const next = pending.shift();
        if (ok === "throw") next.reject(new TypeError("Failed to fetch"));
        else next.resolve({ ok });
        await new Promise((r) => setImmediate(r));
      },
    };
  }

  test("starts after a short random delay, probes, and after a failure reports the server back", async () => {
    const t = make();
    t.probe.start(0);
    const first = TIMING.PROBE_FIRST + 0.5 * TIMING.PROBE_INTERVAL;
    assert.equal(t.probe.due, first);
    t.probe.check(first - 1);
    assert.equal(t.calls.length, 0);
    t.now = first;
    t.probe.check(first);
    assert.equal(t.calls.length, 1);
    assert.equal(t.calls[0][1].cache, "no-store");
    assert.equal(t.probe.due, first + TIMING.PROBE_TIMEOUT, "in flight: the timeout is what is due");
    await t.answer("throw");
    assert.deepEqual(t.events, ["change"]);
    assert.equal(t.probe.due, first + TIMING.PROBE_INTERVAL);
    t.now = t.probe.due;
    t.probe.check(t.now);
    await t.answer(true);
    assert.deepEqual(t.events, ["change", "up"]);
    assert.equal(t.probe.active, false);
  });

  test("a first answer proves nothing unless armed (a live link closed, or a restart)", async () => {
    const plain = make();
    plain.probe.start(0);
    plain.now = plain.probe.due;
    plain.probe.check(plain.now);
    await plain.answer(true);
    assert.deepEqual(plain.events, ["change"], "the server answers, yet the socket failed: the backoff decides");
    assert.equal(plain.probe.active, false);

    const restart = make();
    restart.probe.start(0, { armed: true });
    restart.now = restart.probe.due;
    restart.probe.check(restart.now);
    await restart.answer(true);
    assert.deepEqual(restart.events, ["up"]);
  });

  test("a probe unanswered past its timeout fails (and is aborted); its late answer is ignored", async () => {
    const t = make();
    t.probe.start(0);
    t.now = t.probe.due;
    t.probe.check(t.now);
    t.now += TIMING.PROBE_TIMEOUT;
    t.probe.check(t.now);
    assert.deepEqual(t.events, ["abort", "change"]);
    await t.answer(true); // the aborted one, late
    assert.deepEqual(t.events, ["abort", "change"]);
    t.now = t.probe.due;
    t.probe.check(t.now);
    await t.answer(true);
    assert.deepEqual(t.events, ["abort", "change", "up"], "it had failed, so the server was down");
  });

  test("a 503 counts as down; after ten failures it probes less often", async () => {
    const t = make();
    t.probe.start(0);
    for (let i = 0; i < TIMING.PROBE_FAST_TRIES; i++) {
      t.now = t.probe.due;
      t.probe.check(t.now);
      await t.answer(false);
    }
    assert.equal(t.probe.due - t.now, TIMING.PROBE_SLOW_INTERVAL, "0.5x to 1.5x the slow interval (random 0.5: 1x)");
  });

  test("a hidden or offline page does not probe; stop() ignores an answer on its way", async () => {
    let ready = false;
    const t = make({ ready: () => ready });
    t.probe.start(0);
    t.now = t.probe.due;
    t.probe.check(t.now);
    assert.equal(t.calls.length, 0);
    assert.ok(t.probe.due > t.now);
    ready = true;
    t.now = t.probe.due;
    t.probe.check(t.now);
    assert.equal(t.calls.length, 1);
    t.probe.stop();
    assert.deepEqual(t.events, ["abort"]);
    await t.answer(false);
    assert.deepEqual(t.events, ["abort"]);
    assert.equal(t.probe.active, false);
  });
});

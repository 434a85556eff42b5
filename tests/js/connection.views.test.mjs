// The Connection under protocol v2 (a view), and its health probe while it waits.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TIMING } from "../../static/realtime/constants.js";
import { harness, syncFrame, syncParts, task } from "./fakes.mjs";

const VIEW = { status: ["failed"], agent: null, q: null, limit: 50, current: true };
const COUNTS = { queued: 1, running: 1, succeeded: 0, failed: 2, cancelled: 0, matched: 2 };
const viewSync = (fields = {}) => syncFrame({ view: VIEW, counts: COUNTS, current: [], fp: `fp-${fields.seq ?? 0}`, ...fields });
const range = (from, to, items = [], extra = {}) => ({ type: "events", from, to, items, fp: `fp-${to}`, ...extra });
const upsertItem = (row) => ({ type: "event", seq: row.version, entity: "task", op: "upsert", data: row });

/** A harness subscribed to VIEW and live at `seq`. */
function live(seq = 10, options = {}) {
  const h = harness({ view: VIEW, ...options });
  const ws = h.connect(viewSync({ seq, tasks: [task(2, seq, { status: "failed" }), task(1, seq - 1, { status: "failed" })] }));
  return { h, ws };
}

describe("subscribing with a view", () => {
  test("the first subscribe carries the view; the sync makes the link open and fills the window", () => {
    const { h, ws } = live(10);
    assert.deepEqual(ws.sentOfType("subscribe"), [{ type: "subscribe", since: null, epoch: null, view: VIEW }]);
    assert.equal(h.state, "open");
    assert.deepEqual(h.store.view, VIEW);
    assert.deepEqual(h.store.counts, COUNTS);
    assert.deepEqual(h.conn.status.view, VIEW);
    assert.equal(h.conn.status.confirmedAt, h.clock.now);
  });

  test("ranges apply in order; a hole resubscribes with the same view, since, epoch and fp", () => {
    const { h, ws } = live(10);
    ws.receive(range(11, 12, [upsertItem(task(3, 12, { status: "failed" }))]));
    assert.equal(h.store.last, 12);
    assert.ok(h.store.tasks.has(3));
    ws.receive(range(11, 12)); // a duplicate
    assert.equal(ws.sentOfType("subscribe").length, 1);
    ws.receive(range(15, 15));
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 12, epoch: "e1", fp: "fp-12", view: VIEW });
    ws.receive(range(16, 16));
    assert.equal(ws.sentOfType("subscribe").length, 2, "one outstanding");
    ws.receive(viewSync({ seq: 16, reset: false, tasks: [task(3, 12, { status: "failed" })] }));
    assert.equal(h.store.last, 16);
    assert.deepEqual([...h.store.tasks.keys()], [3]);
    assert.equal(h.state, "open");
  });

  test("a ping ahead of the store resubscribes with the view; one at the store's number confirms it", () => {
    const { h, ws } = live(10);
    h.clock.advance(3000);
    ws.receive({ type: "ping", id: 1, seq: 10, epoch: "e1" });
    assert.equal(h.conn.status.confirmedAt, h.clock.now);
    ws.receive({ type: "ping", id: 2, seq: 11, epoch: "e1" });
    assert.deepEqual(ws.sentOfType("subscribe").at(-1).view, VIEW);
  });

  test("a range too large for a frame comes as a sync with reset:false and is applied like one", () => {
    const { h, ws } = live(10);
    for (const part of syncParts(viewSync({ seq: 30, reset: false, tasks: [task(9, 30, { status: "failed" })], current: [task(8, 29, { status: "running" })] }), 2)) {
      ws.receive(part);
    }
    assert.equal(h.store.last, 30);
    assert.deepEqual([...h.store.tasks.keys()], [9]);
    assert.deepEqual([...h.store.current.keys()], [8]);
    assert.equal(ws.sentOfType("subscribe").length, 1, "nothing was asked: nothing more to send");
  });
});

describe("changing the view", () => {
  test("on a live link: subscribes at once from the store's position; frames of the old view are not applied", () => {
    const { h, ws } = live(10);
    const next = { ...VIEW, status: ["queued"] };
    h.conn.setView(next);
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 10, epoch: "e1", fp: "fp-10", view: next });
    assert.deepEqual(h.conn.status.view, next);
    ws.receive(range(11, 11, [upsertItem(task(5, 11, { status: "failed" }))]));
    assert.equal(h.store.last, 10, "the old view's range is not applied");
    assert.equal(ws.sentOfType("subscribe").length, 2, "nor taken for a gap");
    ws.receive(viewSync({ seq: 11, reset: false, view: next, tasks: [task(6, 11)] }));
    assert.deepEqual([...h.store.tasks.keys()], [6]);
    ws.receive(range(12, 12, [upsertItem(task(7, 12))]));
    assert.equal(h.store.last, 12);
  });

  test("while a subscribe is out, the new view waits for its answer, which is dropped", () => {
    const { h, ws } = live(10);
    ws.receive(range(13, 13)); // a gap: a resubscribe is out
    assert.equal(ws.sentOfType("subscribe").length, 2);
    const next = { ...VIEW, q: "deploy" };
    h.conn.setView(next);
    assert.equal(ws.sentOfType("subscribe").length, 2, "never two outstanding");
    ws.receive(viewSync({ seq: 13, reset: false, tasks: [task(4, 13, { status: "failed" })] }));
    assert.equal(h.store.last, 10, "the answer for the old view is dropped; the store stays");
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 10, epoch: "e1", fp: "fp-10", view: next });
    ws.receive(viewSync({ seq: 14, reset: false, view: next, tasks: [] }));
    assert.equal(h.store.last, 14);
    assert.deepEqual(h.store.view, next);
  });

  test("the view of a sync still in parts waits for its last part", () => {
    const { h, ws } = live(10);
    ws.receive(range(12, 12)); // gap: resubscribe out
    const [p1, p2] = syncParts(viewSync({ seq: 12, reset: false, tasks: [task(1, 9), task(2, 10)] }), 2);
    ws.receive(p1);
    h.conn.setView({ ...VIEW, limit: 200 });
    assert.equal(ws.sentOfType("subscribe").length, 2);
    ws.receive(p2);
    assert.equal(ws.sentOfType("subscribe").length, 3);
    assert.equal(ws.sentOfType("subscribe").at(-1).view.limit, 200);
  });

  test("not connected: the next connection subscribes with the new view", () => {
    const { h, ws } = live(10);
    ws.serverClose(1006);
    h.conn.setView({ ...VIEW, agent: 3 });
    h.clock.advance(h.conn.status.retryAt - h.clock.now);
    h.socket.open();
    assert.deepEqual(h.socket.sentOfType("subscribe"), [{ type: "subscribe", since: 10, epoch: "e1", fp: "fp-10", view: { ...VIEW, agent: 3 } }]);
  });

  test("a refused view goes back to the live one and says why; a first refused view stops", () => {
    const { h, ws } = live(10);
    h.conn.setView({ ...VIEW, limit: 5000 });
    ws.receive({ type: "error", code: "bad_view", message: "view.limit must be an integer from 1 to 1000" });
    assert.equal(h.conn.status.viewError, "view.limit must be an integer from 1 to 1000");
    assert.deepEqual(h.conn.status.view, VIEW);
    assert.equal(h.state, "open");
    ws.receive(range(11, 11));
    assert.equal(h.store.last, 11, "the live view's ranges apply again");
    h.conn.setView(VIEW);
    assert.equal(h.conn.status.viewError, null);

    const first = harness({ view: { limit: 0 } });
    first.conn.start();
    first.socket.open();
    first.socket.receive({ type: "error", code: "bad_view", message: "view.limit must be an integer from 1 to 1000" });
    assert.deepEqual([first.state, first.conn.status.reason], ["stopped", "bad_view"]);
    assert.equal(first.clock.pending, 0, "a retry would be refused the same way");
  });

  test("setView(null) goes back to the whole table", () => {
    const { h, ws } = live(10);
    h.conn.setView(null);
    assert.deepEqual(ws.sentOfType("subscribe").at(-1), { type: "subscribe", since: 10, epoch: "e1", fp: "fp-10" });
    ws.receive(syncFrame({ seq: 11, reset: true, tasks: [task(1, 1)] }));
    assert.equal(h.store.view, null);
  });
});

describe("the health probe while waiting", () => {
  /** A harness whose fetch the test answers: `answer(ok)` settles the oldest request. */
  function probed(options = {}) {
    const requests = [];
    const h = harness({
      view: VIEW, probeUrl: "http://test.invalid/healthz",
      fetch: (url) => new Promise((resolve) => requests.push({ url, resolve })),
      ...options,
    });
    const settle = () => new Promise((r) => setImmediate(r));
    return {
      h, requests,
      async answer(ok) {
        requests.shift().resolve({ ok });
        await settle();
      },
      /** Run the clock to the next probe. */
      toProbe() {
        h.clock.advance(h.clock.nextAt() - h.clock.now);
      },
    };
  }

  test("after a 1012 a visible page probes, and reconnects within the spread of the first answer", async () => {
    const p = probed({ random: () => 0.5 });
    const ws = p.h.connect(viewSync({ seq: 3 }));
    ws.serverClose(1012);
    const { retryAt } = p.h.conn.status;
    assert.equal(retryAt - p.h.clock.now, TIMING.RESTART_BASE + 0.5 * TIMING.RESTART_SPREAD, "the spread still holds for hidden tabs");
    p.toProbe();
    assert.equal(p.requests.length, 1);
    assert.equal(p.requests[0].url, "http://test.invalid/healthz");
    const answeredAt = p.h.clock.now;
    await p.answer(true);
    assert.equal(p.h.conn.status.retryAt, answeredAt + 0.5 * TIMING.PROBE_SPREAD);
    p.h.clock.advance(p.h.conn.status.retryAt - p.h.clock.now);
    assert.equal(p.h.state, "connecting");
    assert.ok(p.h.clock.now < retryAt, "back before the 1012 delay");
  });

  test("after refused tries the backoff grows, but the first answer after a failed probe brings the page back", async () => {
    const p = probed({ backoff: () => 16000 });
    p.h.connect(viewSync({ seq: 3 })).serverClose(1006);
    p.toProbe();
    await p.answer(false); // the server is down
    p.toProbe();
    await p.answer(false);
    p.toProbe();
    const up = p.h.clock.now;
    await p.answer(true);
    p.h.clock.advance(p.h.conn.status.retryAt - p.h.clock.now);
    assert.equal(p.h.state, "connecting");
    assert.ok(p.h.clock.now - up <= TIMING.PROBE_SPREAD, `reconnected ${p.h.clock.now - up} ms after the answer`);
  });

  test("a server that answers while the socket fails (no sign it was away) leaves the backoff in charge", async () => {
    const p = probed({ backoff: () => 16000 });
    p.h.conn.start();
    p.h.socket.open();
    p.h.socket.serverClose(4030); // refused before its sync: the link was never live
    const { retryAt } = p.h.conn.status;
    p.toProbe();
    await p.answer(true);
    assert.equal(p.h.conn.status.retryAt, retryAt);
    assert.equal(p.h.clock.nextAt(), retryAt, "no more probes: one timer, for the retry");
  });

  test("a live link that drops (a fast restart) comes back on the first answer, once; a retry that fails again waits", async () => {
    const p = probed({ backoff: () => 16000 });
    p.h.connect(viewSync({ seq: 3 })).serverClose(1006);
    p.toProbe();
    const up = p.h.clock.now;
    await p.answer(true); // the server is already back
    p.h.clock.advance(p.h.conn.status.retryAt - p.h.clock.now);
    assert.equal(p.h.state, "connecting");
    assert.ok(p.h.clock.now - up <= TIMING.PROBE_SPREAD);
    p.h.socket.fail(); // yet the socket fails: a proxy, say. No loop: the backoff decides now
    const { retryAt } = p.h.conn.status;
    p.toProbe();
    await p.answer(true);
    assert.equal(p.h.conn.status.retryAt, retryAt);
  });

  test("what the probe saw outlives a refused retry: the backoff never keeps the page away once the server answers", async () => {
    const p = probed({ backoff: (attempt) => 1000 * 2 ** attempt, random: () => 0.99 });
    p.h.connect(viewSync({ seq: 3 })).serverClose(1012); // restarting: ~5.5 s before the retry
    p.h.clock.advance(p.h.conn.status.retryAt - p.h.clock.now);
    assert.equal(p.h.state, "connecting");
    const requested = p.requests.length;
    p.h.socket.fail(); // the retry is refused: the new process is not listening yet
    assert.equal(p.h.state, "waiting");
    assert.equal(p.requests.length, requested, "one probe at a time");
    const retryAt = p.h.conn.status.retryAt;
    while (p.requests.length) await p.answer(false); // the server is still down
    p.toProbe();
    const up = p.h.clock.now;
    await p.answer(true);
    p.h.clock.advance(p.h.conn.status.retryAt - p.h.clock.now);
    assert.equal(p.h.state, "connecting");
    assert.ok(p.h.clock.now < retryAt && p.h.clock.now - up <= TIMING.PROBE_SPREAD);
  });

  test("the probe goes on while a try is in flight, and stops once the link is live", async () => {
    const p = probed({ backoff: () => 300 });
    p.h.connect(viewSync({ seq: 3 })).serverClose(1006);
    p.h.clock.advance(300);
    assert.equal(p.h.state, "connecting");
    p.toProbe(); // the next thing due is the probe, not the handshake deadline
    assert.equal(p.requests.length, 1);
    p.h.socket.open();
    p.h.socket.receive(viewSync({ seq: 4 }));
    assert.equal(p.h.state, "open");
    await p.answer(true);
    assert.equal(p.h.clock.pending, 1, "one timer: the link's own deadline");
  });

  test("a hidden page does not probe; stopping and going offline stop the probe", async () => {
    const p = probed();
    p.h.connect(viewSync({ seq: 3 }));
    p.h.doc.visibilityState = "hidden";
    p.h.socket.serverClose(1012);
    p.toProbe();
    assert.equal(p.requests.length, 0);
    p.h.doc.visibilityState = "visible";
    p.toProbe();
    assert.equal(p.requests.length, 1);
    p.h.conn.stop();
    await p.answer(true);
    assert.equal(p.h.state, "stopped");
    assert.equal(p.h.clock.pending, 0);
  });

  test("without a probe URL nothing is fetched (the node harness default)", () => {
    const h = harness();
    h.connect().serverClose(1012);
    assert.equal(h.clock.nextAt(), h.conn.status.retryAt);
  });
});

// The Store under protocol v2: a view's sync holds a window of the tasks, and ranges move it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Store } from "../../static/realtime/store.js";
import { syncFrame, task } from "./fakes.mjs";

const agent = (id, version, extra = {}) => ({ id, name: `agent ${id}`, status: "idle", last_heartbeat: null, version, ...extra });
const ids = (map) => [...map.keys()].sort((a, b) => a - b);
const ECHO = { status: ["failed"], agent: null, q: null, limit: 3, current: true };
const COUNTS = { queued: 4, running: 1, succeeded: 10, failed: 5, cancelled: 0, matched: 5 };

/** A view's sync: the window, the echo, the counts, the running tasks, the fingerprint. */
const viewSync = (fields = {}) => syncFrame({ view: ECHO, counts: COUNTS, current: [], fp: "fp-10", seq: 10, ...fields });
const range = (from, to, items = [], extra = {}) => ({ type: "events", from, to, items, fp: `fp-${to}`, ...extra });
const item = (entity, op, data, extra = {}) => ({ type: "event", entity, op, data, ...extra });

function synced(fields = {}) {
  const store = new Store();
  store.applySync(viewSync({
    tasks: [task(30, 9, { status: "failed" }), task(20, 8, { status: "failed" }), task(10, 7, { status: "failed" })],
    agents: [agent(1, 5), agent(2, 6)],
    current: [task(40, 10, { status: "running", agent: 1 })],
    ...fields,
  }));
  store.drain();
  return store;
}

describe("a view's sync", () => {
  test("keeps the window, the echo, the counts, the running tasks and the fingerprint", () => {
    const store = synced();
    assert.deepEqual(ids(store.tasks), [10, 20, 30]);
    assert.deepEqual(store.view, ECHO);
    assert.deepEqual(store.counts, COUNTS);
    assert.deepEqual(ids(store.current), [40]);
    assert.equal(store.fp, "fp-10");
    assert.equal(store.last, 10);
  });

  test("replaces the task rows even when it is not a reset; agents follow the v1 rules", () => {
    const store = synced();
    store.applySync(viewSync({
      seq: 14, reset: false, fp: "fp-14",
      tasks: [task(50, 14, { status: "failed" }), task(30, 9, { status: "failed" })],
      agents: [agent(2, 12, { status: "busy" })],
      current: [],
      deleted: { tasks: [], agents: [1] },
    }));
    assert.deepEqual(ids(store.tasks), [30, 50], "the window is what the sync says, nothing kept");
    assert.deepEqual(ids(store.agents), [2], "a delta of agents: changed ones on top, deletions removed");
    assert.equal(store.agents.get(2).status, "busy");
    assert.equal(store.current.size, 0);
    assert.equal(store.fp, "fp-14");
    const changes = store.drain();
    assert.equal(changes.reset, false);
    assert.equal(changes.window, true);
    assert.equal(changes.view, false, "the same view: its rows are news");
    assert.deepEqual([...changes.tasks].sort((a, b) => a - b), [10, 20, 30, 50], "old and new ids, for the renderer");
    assert.deepEqual([...changes.current], [40]);
  });

  test("another view's sync says so: its rows are not news", () => {
    const store = synced();
    store.applySync(viewSync({ seq: 11, reset: false, view: { ...ECHO, status: ["queued"] }, tasks: [task(5, 2)] }));
    const changes = store.drain();
    assert.equal(changes.view, true);
    assert.deepEqual(store.view.status, ["queued"]);
  });

  test("a reset view sync replaces the agents too", () => {
    const store = synced();
    store.applySync(viewSync({ seq: 3, epoch: "e2", reset: true, tasks: [], agents: [agent(9, 1)] }));
    assert.deepEqual(ids(store.agents), [9]);
    assert.equal(store.tasks.size, 0);
    assert.equal(store.drain().reset, true);
  });

  test("a sync without a view afterwards drops the view, the counts and the running tasks", () => {
    const store = synced();
    store.applySync(syncFrame({ seq: 12, tasks: [task(1, 1)] }));
    assert.equal(store.view, null);
    assert.equal(store.counts, null);
    assert.equal(store.current.size, 0);
    assert.equal(store.fp, null);
  });
});

describe("ranges", () => {
  test("apply only when from == last + 1; to <= last is a duplicate; a hole or an overlap is a gap", () => {
    const store = synced();
    let notified = 0;
    store.subscribe(() => notified++);
    assert.equal(store.applyRange(range(12, 13)), "gap");
    assert.equal(store.applyRange(range(9, 11)), "gap", "an overlap cannot be placed");
    assert.equal(store.applyRange(range(8, 10)), "duplicate");
    assert.equal(store.last, 10);
    assert.equal(notified, 0);
    assert.equal(store.applyRange(range(11, 13)), "applied");
    assert.equal(store.last, 13);
    assert.equal(store.fp, "fp-13");
    assert.equal(notified, 1, "an empty range still notifies: the data is vouched for up to `to`");
    assert.equal(store.applyRange(range(12, 13)), "duplicate");
  });

  test("before any sync, and for a malformed range, the answer is a gap", () => {
    assert.equal(new Store().applyRange(range(1, 1)), "gap");
    const store = synced();
    assert.equal(store.applyRange({ type: "events", from: "11", to: 12, items: [] }), "gap");
    assert.equal(store.applyRange(range(12, 11)), "gap");
  });

  test("items: a task enters, changes and leaves; agents by the version rule; running tasks beside", () => {
    const store = synced();
    const outcome = store.applyRange(range(11, 15, [
      item("agent", "upsert", agent(1, 11, { status: "busy" }), { seq: 11 }),
      item("agent", "upsert", agent(2, 3, { name: "older" }), { seq: 12 }), // older than held: ignored
      item("task", "upsert", task(60, 13, { status: "failed" }), { seq: 13 }),
      item("task", "upsert", task(20, 14, { status: "failed", title: "renamed" }), { seq: 14 }),
      item("task", "delete", { id: 10 }, { left: true }),
      item("task", "delete", { id: 30 }),
      item("current", "upsert", task(41, 15, { status: "running", agent: 2 }), { seq: 15 }),
      item("current", "delete", { id: 40 }),
      item("comet", "upsert", { id: 1, version: 15 }), // an entity this client does not keep
    ], { counts: { ...COUNTS, failed: 6, matched: 6 } }));
    assert.equal(outcome, "applied");
    assert.deepEqual(ids(store.tasks), [20, 60]);
    assert.equal(store.tasks.get(20).title, "renamed");
    assert.equal(store.agents.get(1).status, "busy");
    assert.equal(store.agents.get(2).name, "agent 2", "an agent row never goes back");
    assert.deepEqual(ids(store.current), [41]);
    assert.equal(store.counts.matched, 6);
    const changes = store.drain();
    assert.deepEqual([...changes.left], [10], "10 left the window; 30 was deleted");
    assert.deepEqual([...changes.tasks].sort((a, b) => a - b), [10, 20, 30, 60]);
    assert.deepEqual([...changes.current].sort(), [40, 41]);
    assert.equal(changes.counts, true);
    assert.equal(changes.window, false);
  });

  test("counts stay as they were when the range has none; an agent delete keeps the seq guard", () => {
    const store = synced();
    store.applyRange(range(11, 11, [item("agent", "delete", { id: 2 }, { seq: 5 })]));
    assert.deepEqual(store.counts, COUNTS);
    assert.ok(store.agents.has(2), "a delete older than the row does not remove it");
    assert.equal(store.drain().counts, false);
    store.applyRange(range(12, 12, [item("agent", "delete", { id: 2 }, { seq: 12 })]));
    assert.ok(!store.agents.has(2));
  });

  test("applyEvent hands a range to applyRange", () => {
    const store = synced();
    assert.equal(store.applyEvent(range(11, 11, [item("task", "delete", { id: 10 }, { left: true })])), "applied");
    assert.ok(!store.tasks.has(10));
  });

  test("a v1 event records its fingerprint", () => {
    const store = new Store();
    store.applySync(syncFrame({ seq: 1, fp: "a" }));
    store.applyEvent({ type: "event", seq: 2, entity: "task", op: "upsert", data: task(1, 2), fp: "b" });
    assert.equal(store.fp, "b");
  });
});

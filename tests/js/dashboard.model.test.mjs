import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Store } from "../../static/realtime/store.js";
import { Model, Pending } from "../../static/dashboard/model.js";
import { describeAgent, describeTask, feedLines } from "../../static/dashboard/feed.js";
import { prng, syncFrame, upsert } from "./fakes.mjs";

const created = (n) => new Date(Date.UTC(2024, 0, 1) + n * 1000).toISOString();
const task = (id, version, extra = {}) => ({
  id, title: `task ${id}`, status: "queued", progress: 0, agent: null, version,
  created_at: created(id), updated_at: created(id), started_at: null, ...extra,
});
const agent = (id, version, extra = {}) => ({ id, name: `agent ${id}`, status: "idle", last_heartbeat: null, version, ...extra });

/** A store and a model that renders from it, as main.js wires them. */
function wired() {
  const store = new Store();
  const model = new Model();
  const pending = new Pending();
  store.subscribe(() => pending.absorb(store.drain()));
  const render = () => model.merge(store, pending.take());
  return { store, model, pending, render };
}

/** What a fresh model built from the store alone would hold. */
function fresh(store) {
  const m = new Model();
  m.merge(store, { tasks: new Set(), agents: new Set(), current: new Set(), left: new Set(), reset: true });
  return m;
}

const VIEW = { status: ["failed", "queued"], agent: null, q: null, limit: 3, current: true };
const counts = (extra = {}) => ({ queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, matched: 0, ...extra });
const viewSync = (fields = {}) => syncFrame({ view: VIEW, counts: counts(), current: [], ...fields });
const range = (from, to, items = [], extra = {}) => ({ type: "events", from, to, items, ...extra });
const item = (entity, op, data, extra = {}) => ({ type: "event", entity, op, data, ...extra });

describe("Model.merge (protocol v2: a view)", () => {
  test("the first merge takes the window newest first (id descending), the server's counts and the view", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 5, tasks: [task(3, 2), task(9, 3), task(1, 1)], counts: counts({ queued: 40, matched: 40 }) }));
    const diff = w.render();
    assert.equal(diff.first, true);
    assert.deepEqual(w.model.order, [9, 3, 1]);
    assert.equal(w.model.counts.queued, 40, "the server's count of the whole table, not the window's 3");
    assert.deepEqual(w.model.view, VIEW);
    assert.equal(diff.viewChanged, true);
  });

  test("counts follow the ranges; an empty range moves nothing else", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 5, tasks: [task(1, 1)], counts: counts({ queued: 1, matched: 1 }) }));
    w.render();
    w.store.applyRange(range(6, 6, [], { counts: counts({ queued: 2, matched: 2 }) }));
    let diff = w.render();
    assert.deepEqual([diff.countsChanged, diff.tasks.length, w.model.counts.queued], [true, 0, 2]);
    w.store.applyRange(range(7, 7));
    diff = w.render();
    assert.deepEqual([diff.countsChanged, diff.tasks.length], [false, 0]);
  });

  test("why rows come and go: a new task, one that starts or stops matching, one pushed out at the bottom", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 10, tasks: [task(30, 9), task(20, 8), task(10, 7)], agents: [agent(1, 1)] }));
    w.render();
    // Task 40 is created (a new id): it enters at the top and pushes 10 out at the bottom.
    w.store.applyRange(range(11, 11, [item("task", "upsert", task(40, 11)), item("task", "delete", { id: 10 }, { left: true })]));
    let diff = w.render();
    const by = (id) => diff.tasks.find((c) => c.id === id);
    assert.equal(by(40).entered, "new");
    assert.equal(by(10).left, "pushed");
    assert.deepEqual(feedLines(diff, () => "").map((l) => l.text), ["New task “task 40” (Queued)"]);
    // Task 30 succeeds (it stops matching); 10 moves up from below into the freed place.
    w.store.applyRange(range(12, 12, [item("task", "delete", { id: 30 }, { left: true }), item("task", "upsert", task(10, 7))]));
    diff = w.render();
    assert.equal(by(30).left, "stopped");
    assert.equal(by(10).entered, null);
    assert.deepEqual(feedLines(diff, () => "").map((l) => [l.text, l.gone]), [["“task 30” is no longer in this view", false]]);
    // Task 25 (created earlier, not in the window) fails: it starts matching, in the middle.
    w.store.applyRange(range(13, 13, [item("task", "upsert", task(25, 13, { status: "failed" })), item("task", "delete", { id: 10 }, { left: true })]));
    diff = w.render();
    assert.equal(by(25).entered, "matched");
    assert.deepEqual(w.model.order, [40, 25, 20]);
    // A deletion is a deletion.
    w.store.applyRange(range(14, 14, [item("task", "delete", { id: 20 })]));
    diff = w.render();
    assert.equal(by(20).left, null);
    assert.equal(feedLines(diff, () => "")[0].text, "Task “task 20” was deleted");
  });

  test("a sync that replaces the window (a resync) cannot tell a deletion from a row that left", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 10, tasks: [task(30, 9), task(20, 8), task(10, 7)] }));
    w.render();
    w.store.applySync(viewSync({ seq: 14, reset: false, tasks: [task(40, 12), task(30, 9), task(10, 7)] }));
    const diff = w.render();
    const by = (id) => diff.tasks.find((c) => c.id === id);
    assert.equal(by(20).left, "stopped");
    assert.equal(by(40).entered, "new");
    assert.deepEqual(feedLines(diff, () => "").map((l) => l.text), ["New task “task 40” (Queued)", "“task 20” is no longer in this view"]);
    w.store.applySync(viewSync({ seq: 15, reset: false, tasks: [task(50, 15), task(40, 12), task(30, 9)] }));
    assert.equal(w.render().tasks.find((c) => c.id === 10).left, "pushed", "below the new bottom: pushed out");
  });

  test("another view's rows are not news; the agents' changes still are", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 5, tasks: [task(1, 1)], agents: [agent(1, 1)] }));
    w.render();
    w.store.applySync(viewSync({ seq: 6, reset: false, view: { ...VIEW, status: ["running"] }, tasks: [task(7, 6, { status: "running" })], agents: [agent(1, 6, { status: "offline" })] }));
    const diff = w.render();
    assert.equal(diff.viewChanged, true);
    assert.deepEqual(w.model.order, [7]);
    assert.deepEqual(feedLines(diff, () => "").map((l) => l.text), ["agent 1 went offline"]);
  });

  test("each agent's running task comes from `current`, whatever the window holds", () => {
    const w = wired();
    w.store.applySync(viewSync({
      seq: 5, tasks: [task(1, 1)], agents: [agent(7, 1), agent(8, 1)],
      current: [task(50, 4, { status: "running", agent: 7, started_at: created(100) })],
    }));
    let diff = w.render();
    assert.equal(w.model.currentTask(7).id, 50, "task 50 is not in the window (a failed/queued view)");
    w.store.applyRange(range(6, 7, [
      item("current", "upsert", task(51, 6, { status: "running", agent: 8, started_at: created(200) })),
      item("current", "delete", { id: 50 }),
    ]));
    diff = w.render();
    assert.equal(w.model.currentTask(7), null);
    assert.equal(w.model.currentTask(8).id, 51);
    assert.deepEqual(diff.current.map((c) => c.id).sort(), [50, 51]);
  });

  test("while held, heldCount says how many rows differ, including across a new window", () => {
    const w = wired();
    w.store.applySync(viewSync({ seq: 2, tasks: [task(1, 1), task(2, 2)] }));
    w.render();
    w.store.applyRange(range(3, 3, [item("task", "upsert", task(1, 3))]));
    w.store.applyRange(range(4, 4, [item("task", "upsert", task(5, 4))]));
    assert.equal(w.model.heldCount(w.store, w.pending), 2);
    w.store.applySync(viewSync({ seq: 9, reset: false, tasks: [task(5, 4), task(6, 9)] }));
    assert.equal(w.model.heldCount(w.store, w.pending), 4, "5 and 6 new, 1 and 2 gone");
    w.render();
    assert.equal(w.model.heldCount(w.store, w.pending), 0);
  });

  test("property: after any interleaving of ranges, gaps, resyncs and renders, the model equals a fresh build", () => {
    for (let seed = 1; seed <= 30; seed += 1) {
      const random = prng(seed);
      const pick = (n) => Math.floor(random() * n);
      const w = wired();
      let seq = 0;
      const db = new Map();
      const running = new Map();
      const window = () => [...db.values()].sort((a, b) => b.id - a.id).slice(0, 5);
      const sync = (reset) => w.store.applySync(viewSync({ seq, reset, tasks: window(), current: [...running.values()], view: { ...VIEW, limit: 5 } }));
      sync(true);
      for (let step = 0; step < 200; step += 1) {
        const r = random();
        if (r < 0.6) {
          const before = new Set(window().map((t) => t.id));
          seq += 1;
          const id = 1 + pick(40);
          const row = task(id, seq, { status: ["queued", "running", "failed"][pick(3)], agent: 1 + pick(4), started_at: created(pick(1000)) });
          db.set(id, row);
          if (row.status === "running") running.set(id, row);
          const items = [];
          const wasRunning = running.has(id) && row.status !== "running";
          if (wasRunning) running.delete(id);
          const after = window();
          if (after.some((t) => t.id === id)) items.push(item("task", "upsert", row));
          for (const gone of before) if (!after.some((t) => t.id === gone)) items.push(item("task", "delete", { id: gone }, { left: true }));
          for (const t of after) if (!before.has(t.id) && t.id !== id) items.push(item("task", "upsert", t));
          if (row.status === "running") items.push(item("current", "upsert", row));
          if (wasRunning) items.push(item("current", "delete", { id }));
          w.store.applyRange(range(seq, seq, items));
        } else if (r < 0.75) {
          sync(pick(2) === 0);
        } else {
          w.render();
        }
      }
      w.render();
      const expected = fresh(w.store);
      assert.deepEqual(w.model.order, expected.order, `seed ${seed}`);
      assert.deepEqual(w.model.order, window().map((t) => t.id), `seed ${seed}: the window`);
      for (let a = 1; a <= 4; a += 1) assert.equal(w.model.currentTask(a)?.id, expected.currentTask(a)?.id, `seed ${seed} agent ${a}`);
    }
  });
});

describe("Model.merge (protocol v1: the whole table)", () => {
  test("updates never move a row; inserts and deletes keep the order newest first", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 3, tasks: [task(1, 1), task(2, 2), task(3, 3)] }));
    w.render();
    const before = w.model.order;
    w.store.applyEvent(upsert(4, task(1, 0, { status: "running", progress: 50 })));
    const diff = w.render();
    assert.equal(diff.reordered, false);
    assert.equal(w.model.order, before, "same array: nothing moved");
    w.store.applyEvent(upsert(5, task(10, 0)));
    w.store.applyEvent({ type: "event", seq: 6, entity: "task", op: "delete", data: { id: 2 } });
    assert.equal(w.render().reordered, true);
    assert.deepEqual(w.model.order, [10, 3, 1]);
    assert.deepEqual(before, [3, 2, 1], "the old array is never mutated (the table anchors on it)");
  });

  test("each agent's running task follows every change (the newest started; the highest id on a tie)", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 2, tasks: [task(1, 1)], agents: [agent(7, 2)] }));
    w.render();
    assert.equal(w.model.currentTask(7), null);
    w.store.applyEvent(upsert(3, task(1, 0, { status: "running", agent: 7, started_at: created(100) })));
    w.store.applyEvent(upsert(4, task(2, 0, { status: "running", agent: 7, started_at: created(200) })));
    w.store.applyEvent(upsert(5, task(3, 0, { status: "running", agent: 7, started_at: created(200) })));
    w.render();
    assert.equal(w.model.currentTask(7).id, 3);
    w.store.applyEvent(upsert(6, task(3, 0, { status: "succeeded", agent: 7, progress: 100 })));
    w.store.applyEvent(upsert(7, task(2, 0, { status: "succeeded", agent: 7, progress: 100 })));
    w.render();
    assert.equal(w.model.currentTask(7).id, 1);
    assert.equal(w.model.counts, null, "the page counts nothing itself");
  });

  test("a reset after a reconnect diffs against what is shown: only real changes", () => {
    const w = wired();
    w.store.applySync(syncFrame({ epoch: "a", seq: 3, tasks: [task(1, 1), task(2, 2), task(3, 3)] }));
    w.render();
    w.store.applySync(syncFrame({ epoch: "b", seq: 9, tasks: [task(1, 1), task(2, 8, { status: "failed" }), task(4, 9)] }));
    const diff = w.render();
    assert.deepEqual(diff.tasks.map((c) => [c.id, Boolean(c.before), Boolean(c.after)]).sort(), [[2, true, true], [3, true, false], [4, false, true]]);
  });
});

describe("feed lines", () => {
  const name = (id) => `agent ${id}`;

  test("status changes, new, deleted, renamed and assigned tasks are news; progress is not", () => {
    const t = task(1, 1, { title: "Build" });
    assert.equal(describeTask({ after: t }, name).text, "New task “Build” (Queued)");
    assert.equal(describeTask({ before: t }, name).text, "Task “Build” was deleted");
    assert.equal(describeTask({ before: t }, name).gone, true);
    const running = { ...t, status: "running", agent: 7, version: 2 };
    const line = describeTask({ before: t, after: running }, name);
    assert.deepEqual([line.text, line.tone, line.gone], ["“Build”: Queued → Running on agent 7", "running", false]);
    assert.equal(describeTask({ before: running, after: { ...running, progress: 50 } }, name), null);
    assert.equal(describeTask({ before: t, after: { ...t, title: "Ship" } }, name).text, "“Build” renamed to “Ship”");
    assert.equal(describeTask({ before: running, after: { ...running, agent: 8 } }, name).text, "“Build” assigned to agent 8");
  });

  test("agents: joined, removed, status, renamed; heartbeats alone are not news", () => {
    const a = agent(3, 1, { name: "atlas" });
    assert.equal(describeAgent({ after: a }).text, "Agent atlas joined (Idle)");
    assert.equal(describeAgent({ before: a }).text, "Agent atlas was removed");
    assert.equal(describeAgent({ before: a, after: { ...a, status: "offline" } }).text, "atlas went offline");
    assert.equal(describeAgent({ before: a, after: { ...a, status: "busy" } }).text, "atlas is busy");
    assert.equal(describeAgent({ before: a, after: { ...a, last_heartbeat: created(5) } }), null);
  });

  test("a burst becomes a few lines and one summary", () => {
    const tasks = Array.from({ length: 500 }, (_, i) => ({ id: i, before: task(i, 1), after: task(i, 2, { status: "running" }) }));
    const lines = feedLines({ tasks, agents: [] }, name, 6);
    assert.equal(lines.length, 6);
    assert.equal(lines.at(-1).text, "…and 495 more changes");
    assert.equal(lines.at(-1).tone, "summary");
  });

  test("titles stay data: markup in a title is kept as characters for textContent", () => {
    const evil = "<img src=x onerror=alert(1)>";
    assert.equal(describeTask({ after: task(1, 1, { title: evil }) }, name).text, `New task “${evil}” (Queued)`);
  });
});

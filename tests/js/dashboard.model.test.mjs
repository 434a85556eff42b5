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
  m.merge(store, { tasks: new Set(), agents: new Set(), reset: true });
  return m;
}

describe("Model.merge", () => {
  test("first merge fills everything, is marked first, and orders newest first", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 5, tasks: [task(1, 1), task(3, 2), task(2, 3)], agents: [agent(9, 4)] }));
    const diff = w.render();
    assert.equal(diff.first, true);
    assert.deepEqual(w.model.order, [3, 2, 1]);
    assert.equal(w.model.counts.queued, 3);
    assert.equal(w.model.agents.get(9).name, "agent 9");
    assert.equal(w.render().first, false);
  });

  test("updates never move a row; inserts and deletes keep the order sorted", () => {
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

  test("counts by status and each agent's running task follow every change", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 2, tasks: [task(1, 1)], agents: [agent(7, 2)] }));
    w.render();
    assert.equal(w.model.currentTask(7), null);
    w.store.applyEvent(upsert(3, task(1, 0, { status: "running", agent: 7, started_at: created(100) })));
    w.store.applyEvent(upsert(4, task(2, 0, { status: "running", agent: 7, started_at: created(200) })));
    w.render();
    assert.equal(w.model.currentTask(7).id, 2, "the latest started one, as Agent.current_task");
    assert.deepEqual(w.model.counts, { queued: 0, running: 2, succeeded: 0, failed: 0, cancelled: 0 });
    w.store.applyEvent(upsert(5, task(2, 0, { status: "succeeded", agent: 7, progress: 100 })));
    w.render();
    assert.equal(w.model.currentTask(7).id, 1);
    w.store.applyEvent(upsert(6, task(1, 0, { status: "running", agent: null })));
    w.render();
    assert.equal(w.model.currentTask(7), null);
    assert.deepEqual(w.model.counts, { queued: 0, running: 1, succeeded: 1, failed: 0, cancelled: 0 });
  });

  test("current task on equal start times is the highest id, as CURRENT_ORDER on the server", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 2, tasks: [], agents: [agent(7, 2)] }));
    w.store.applyEvent(upsert(3, task(5, 0, { status: "running", agent: 7, started_at: created(100) })));
    w.store.applyEvent(upsert(4, task(9, 0, { status: "running", agent: 7, started_at: created(100) })));
    w.store.applyEvent(upsert(5, task(6, 0, { status: "running", agent: 7, started_at: created(100) })));
    w.render();
    assert.equal(w.model.currentTask(7).id, 9);
  });

  test("a reset after a reconnect diffs against what is shown: only real changes", () => {
    const w = wired();
    w.store.applySync(syncFrame({ epoch: "a", seq: 3, tasks: [task(1, 1), task(2, 2), task(3, 3)] }));
    w.render();
    w.store.applySync(syncFrame({ epoch: "b", seq: 9, tasks: [task(1, 1), task(2, 8, { status: "failed" }), task(4, 9)] }));
    const diff = w.render();
    assert.deepEqual(diff.tasks.map((c) => [c.id, Boolean(c.before), Boolean(c.after)]).sort(), [[2, true, true], [3, true, false], [4, false, true]]);
  });

  test("while held, heldCount says how many rows differ, including across a reset", () => {
    const w = wired();
    w.store.applySync(syncFrame({ seq: 2, tasks: [task(1, 1), task(2, 2)] }));
    w.render();
    w.store.applyEvent(upsert(3, task(1, 0)));
    w.store.applyEvent(upsert(4, task(1, 0)));
    w.store.applyEvent(upsert(5, task(5, 0)));
    assert.equal(w.model.heldCount(w.store, w.pending), 2);
    w.store.applySync(syncFrame({ epoch: "z", seq: 9, tasks: [task(1, 4), task(5, 5)] }));
    assert.equal(w.model.heldCount(w.store, w.pending), 3, "1 changed, 2 deleted, 5 new");
    w.render();
    assert.equal(w.model.heldCount(w.store, w.pending), 0);
  });

  test("property: after any interleaving of events, gaps, resyncs and renders, the model equals a fresh build", () => {
    for (let seed = 1; seed <= 30; seed += 1) {
      const random = prng(seed);
      const pick = (n) => Math.floor(random() * n);
      const w = wired();
      let seq = 0;
      const db = new Map();
      const sync = (reset) => w.store.applySync(syncFrame({ epoch: "e", seq, reset, tasks: [...db.values()] }));
      sync(true);
      for (let step = 0; step < 200; step += 1) {
        const r = random();
        if (r < 0.6) {
          seq += 1;
          const id = 1 + pick(40);
          const row = task(id, seq, {
            status: ["queued", "running", "succeeded", "failed", "cancelled"][pick(5)],
            agent: pick(3) === 0 ? null : 1 + pick(4),
            started_at: created(pick(1000)),
          });
          db.set(id, row);
          w.store.applyEvent(upsert(seq, row));
        } else if (r < 0.75 && db.size > 0) {
          seq += 1;
          const id = [...db.keys()][pick(db.size)];
          db.delete(id);
          w.store.applyEvent({ type: "event", seq, entity: "task", op: "delete", data: { id } });
        } else if (r < 0.8) {
          sync(pick(2) === 0);
        } else {
          w.render();
        }
      }
      sync(false);
      w.render();
      const expected = fresh(w.store);
      assert.deepEqual(w.model.order, expected.order, `seed ${seed}`);
      assert.deepEqual(w.model.counts, expected.counts, `seed ${seed}`);
      for (let a = 1; a <= 4; a += 1) assert.equal(w.model.currentTask(a)?.id, expected.currentTask(a)?.id, `seed ${seed} agent ${a}`);
      assert.deepEqual([...w.model.tasks.keys()].sort(), [...db.keys()].sort(), `seed ${seed}`);
    }
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

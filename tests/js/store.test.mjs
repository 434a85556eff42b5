import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Store } from "../../static/realtime/store.js";
import { prng, syncFrame, task, upsert } from "./fakes.mjs";

const agent = (id, version) => ({ id, name: `agent ${id}`, status: "idle", last_heartbeat: null, version });
const ids = (map) => [...map.keys()].sort();

describe("Store.applySync", () => {
  test("reset replaces everything and sets epoch and last", () => {
    const store = new Store();
    store.applySync(syncFrame({ epoch: "a", seq: 3, tasks: [task(1, 1), task(2, 3)], agents: [agent(9, 2)] }));
    store.drain();
    store.applySync(syncFrame({ epoch: "b", seq: 7, tasks: [task(5, 7)], agents: [] }));
    assert.deepEqual(ids(store.tasks), [5]);
    assert.equal(store.agents.size, 0);
    assert.equal(store.epoch, "b");
    assert.equal(store.last, 7);
    assert.equal(store.drain().reset, true);
  });

  test("reset keeps the same Map objects, so a renderer's references stay valid", () => {
    const store = new Store();
    const { tasks, agents } = store;
    store.applySync(syncFrame({ tasks: [task(1, 1)] }));
    assert.equal(store.tasks, tasks);
    assert.equal(store.agents, agents);
  });

  test("a delta applies on top, removes deletions, never regresses a row", () => {
    const store = new Store();
    store.applySync(syncFrame({ seq: 10, tasks: [task(1, 10), task(2, 4), task(3, 5)], agents: [agent(7, 6), agent(8, 2)] }));
    store.drain();
    store.applySync(syncFrame({
      seq: 12, reset: false,
      tasks: [task(1, 9, { title: "older" }), task(2, 11, { title: "newer" }), task(4, 12)],
      agents: [],
      deleted: { tasks: [3], agents: [8] },
    }));
    assert.equal(store.tasks.get(1).title, "task 1", "row must not go back to version 9");
    assert.equal(store.tasks.get(2).title, "newer");
    assert.deepEqual(ids(store.tasks), [1, 2, 4]);
    assert.deepEqual(ids(store.agents), [7]);
    assert.equal(store.last, 12);
    const changes = store.drain();
    assert.equal(changes.reset, false);
    assert.deepEqual([...changes.tasks].sort(), [2, 3, 4]);
    assert.deepEqual([...changes.agents], [8]);
  });
});

describe("Store.applyEvent", () => {
  const synced = (seq = 5) => {
    const store = new Store();
    store.applySync(syncFrame({ seq, tasks: [task(1, 1)] }));
    store.drain();
    return store;
  };

  test("applies seq == last + 1, ignores duplicates, reports gaps", () => {
    const store = synced(5);
    assert.equal(store.applyEvent(upsert(6, task(2))), "applied");
    assert.equal(store.last, 6);
    assert.equal(store.applyEvent(upsert(6, task(2, 0, { title: "replayed" }))), "duplicate");
    assert.equal(store.applyEvent(upsert(3, task(2))), "duplicate");
    assert.equal(store.tasks.get(2).title, "task 2");
    assert.equal(store.applyEvent(upsert(8, task(3))), "gap");
    assert.equal(store.last, 6);
    assert.equal(store.tasks.has(3), false);
  });

  test("before any sync every event is a gap", () => {
    assert.equal(new Store().applyEvent(upsert(1, task(1))), "gap");
  });

  test("an older version in an event never replaces a newer row, but the seq still counts", () => {
    const store = synced(5);
    store.applySync(syncFrame({ seq: 5, reset: false, tasks: [task(1, 50, { title: "new" })] }));
    store.applyEvent({ type: "event", seq: 6, entity: "task", op: "upsert", data: task(1, 6, { title: "old" }) });
    assert.equal(store.tasks.get(1).title, "new");
    assert.equal(store.last, 6);
  });

  test("delete removes by id; an old delete cannot remove a newer row", () => {
    const store = synced(5);
    assert.equal(store.applyEvent({ type: "event", seq: 6, entity: "task", op: "delete", data: { id: 1 } }), "applied");
    assert.equal(store.tasks.has(1), false);
    assert.deepEqual([...store.drain().tasks], [1]);
    store.applySync(syncFrame({ seq: 6, reset: false, tasks: [task(9, 40)] }));
    store.applyEvent({ type: "event", seq: 7, entity: "task", op: "delete", data: { id: 9 } });
    assert.equal(store.tasks.has(9), true);
  });

  test("agents and unknown entities: unknown ones still advance the sequence", () => {
    const store = synced(5);
    store.applyEvent(upsert(6, agent(3), "agent"));
    store.applyEvent(upsert(7, { id: 1 }, "workflow"));
    assert.equal(store.agents.get(3).version, 6);
    assert.equal(store.last, 7);
  });

  test("events batch: applied in order, one notification per frame", () => {
    const store = synced(5);
    let calls = 0;
    store.subscribe(() => calls++);
    const frame = { type: "events", items: [upsert(5, task(1)), upsert(6, task(2)), upsert(7, task(3)), upsert(8, task(2))] };
    assert.equal(store.applyEvent(frame), "applied");
    assert.equal(calls, 1);
    assert.equal(store.last, 8);
    assert.equal(store.tasks.get(2).version, 8);
    assert.deepEqual([...store.drain().tasks].sort(), [2, 3]);
  });

  test("events batch with a gap applies the contiguous prefix and reports the gap", () => {
    const store = synced(5);
    let calls = 0;
    store.subscribe(() => calls++);
    const frame = { type: "events", items: [upsert(6, task(2)), upsert(9, task(3)), upsert(10, task(4))] };
    assert.equal(store.applyEvent(frame), "gap");
    assert.equal(store.last, 6);
    assert.deepEqual(ids(store.tasks), [1, 2]);
    assert.equal(calls, 1);
  });

  test("a frame of duplicates notifies nobody", () => {
    const store = synced(5);
    let calls = 0;
    store.subscribe(() => calls++);
    assert.equal(store.applyEvent({ type: "events", items: [upsert(4, task(1)), upsert(5, task(1))] }), "duplicate");
    assert.equal(calls, 0);
  });
});

describe("Store listeners and drain", () => {
  test("subscribe returns an unsubscribe; a throwing listener does not stop the others", () => {
    const errors = [];
    const store = new Store({ onError: (e) => errors.push(e) });
    const seen = [];
    store.subscribe(() => { throw new Error("boom"); });
    const off = store.subscribe((s) => seen.push(s.last));
    store.applySync(syncFrame({ seq: 1 }));
    off();
    store.applyEvent(upsert(2, task(1)));
    assert.deepEqual(seen, [1]);
    assert.equal(errors.length, 2);
  });

  test("drain clears the record", () => {
    const store = new Store();
    store.applySync(syncFrame({ seq: 1, tasks: [task(1, 1)] }));
    assert.equal(store.drain().tasks.size, 1);
    const empty = store.drain();
    assert.equal(empty.tasks.size + empty.agents.size, 0);
    assert.equal(empty.reset, false);
  });
});

// Zulip's strongest test, for our stream: a sync plus the events after it, through dropped,
// duplicated and re-sent frames and delta resyncs, ends equal to the database.
describe("sync + events equals the database", () => {
  class Database {
    rows = { tasks: new Map(), agents: new Map() };
    tombstones = []; // {collection, id, seq}
    head = 0;
    log = [];

    change(random) {
      const collection = random() < 0.7 ? "tasks" : "agents";
      const entity = collection === "tasks" ? "task" : "agent";
      const id = 1 + Math.floor(random() * 12);
      const seq = ++this.head;
      if (this.rows[collection].has(id) && random() < 0.25) {
        this.rows[collection].delete(id);
        this.tombstones.push({ collection, id, seq });
        this.log.push({ type: "event", seq, entity, op: "delete", data: { id } });
      } else {
        const row = { id, value: Math.floor(random() * 1000), version: seq };
        this.rows[collection].set(id, row);
        this.log.push({ type: "event", seq, entity, op: "upsert", data: row });
      }
    }

    sync(since) {
      const changed = (c) => [...this.rows[c].values()].filter((r) => since === null || r.version > since);
      const gone = (c) => this.tombstones.filter((t) => t.collection === c && t.seq > since).map((t) => t.id);
      if (since === null) {
        return syncFrame({ seq: this.head, tasks: changed("tasks"), agents: changed("agents") });
      }
      return syncFrame({
        seq: this.head, reset: false, tasks: changed("tasks"), agents: changed("agents"),
        deleted: { tasks: gone("tasks"), agents: gone("agents") },
      });
    }
  }

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`seed ${seed}`, () => {
      const random = prng(seed);
      const db = new Database();
      for (let i = 0; i < 30; i++) db.change(random);
      const store = new Store();
      store.applySync(db.sync(null));
      let cursor = db.head; // next event the "server" will push
      for (let step = 0; step < 400; step++) {
        db.change(random);
        while (cursor < db.head) {
          const event = db.log[cursor++];
          const roll = random();
          if (roll < 0.1) continue; // dropped by the channel layer
          if (roll < 0.2) store.applyEvent(db.log[Math.floor(random() * cursor)]); // stale replay
          if (store.applyEvent(event) === "gap") store.applySync(db.sync(store.last));
        }
      }
      if (store.last < db.head) store.applySync(db.sync(store.last)); // the heartbeat's seq reveals any trailing drop
      assert.deepEqual(store.tasks, db.rows.tasks);
      assert.deepEqual(store.agents, db.rows.agents);
      assert.equal(store.last, db.head);
    });
  }
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SyncParts, isPart } from "../../static/realtime/parts.js";
import { Store } from "../../static/realtime/store.js";
import { syncFrame, syncParts, task } from "./fakes.mjs";

const agent = (id, version) => ({ id, name: `agent ${id}`, status: "idle", last_heartbeat: null, version });

describe("SyncParts", () => {
  test("parts are staged and handed over whole, in one piece, after the last", () => {
    const parts = new SyncParts();
    const [p1, p2, p3] = syncParts({
      epoch: "e", seq: 9, reset: true, heartbeat_interval: 5,
      tasks: [task(1, 1), task(2, 2), task(3, 3), task(4, 4)], agents: [agent(7, 5)],
    }, 3);
    assert.deepEqual(parts.add(p1), { status: "staged" });
    assert.equal(parts.staging, true);
    assert.deepEqual(parts.add(p2), { status: "staged" });
    const outcome = parts.add(p3);
    assert.equal(outcome.status, "whole");
    assert.equal(parts.staging, false);
    const { sync } = outcome;
    assert.deepEqual(sync.tasks.map((r) => r.id), [1, 2, 3, 4]);
    assert.deepEqual(sync.agents.map((r) => r.id), [7]);
    assert.deepEqual([sync.epoch, sync.seq, sync.reset, sync.heartbeat_interval], ["e", 9, true, 5]);
    assert.equal("part" in sync || "parts" in sync, false, "the whole sync is not a part");
  });

  test("a sync without part/parts (or in one part) is whole at once", () => {
    const parts = new SyncParts();
    const frame = syncFrame({ seq: 3, tasks: [task(1, 3)] });
    assert.deepEqual(parts.add(frame), { status: "whole", sync: frame });
    const one = parts.add({ ...frame, part: 1, parts: 1 });
    assert.equal(one.status, "whole");
    assert.equal(isPart(one.sync), false);
    assert.equal(parts.staging, false);
  });

  for (const [name, change] of [
    ["another seq", { seq: 10 }],
    ["another epoch", { epoch: "other" }],
    ["another reset", { reset: false }],
    ["another part count", { parts: 4 }],
  ]) {
    test(`a part with ${name} discards the staging and is not used`, () => {
      const parts = new SyncParts();
      const [p1, p2] = syncParts({ epoch: "e", seq: 9, tasks: [task(1, 1), task(2, 2), task(3, 3)] }, 3);
      parts.add(p1);
      const outcome = parts.add({ ...p2, ...change });
      assert.equal(outcome.status, "stray");
      assert.match(outcome.discarded, /!=/);
      assert.equal(parts.staging, false);
    });
  }

  test("a part out of order discards the staging; the rest of that sync is stray", () => {
    const parts = new SyncParts();
    const [p1, p2, p3] = syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2), task(3, 3)] }, 3);
    parts.add(p1);
    const skipped = parts.add(p3);
    assert.equal(skipped.status, "stray");
    assert.match(skipped.discarded, /part 3 arrived, part 2 was due/);
    assert.equal(parts.add(p2).status, "stray", "no part 1 staged any more");
    assert.equal(parts.staging, false);
  });

  test("a repeated part is out of order too", () => {
    const parts = new SyncParts();
    const [p1, p2] = syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2)] }, 2);
    parts.add(p1);
    assert.match(parts.add(p1).discarded, /part 1 arrived, part 2 was due/);
    assert.equal(parts.staging, true, "that part 1 starts a new staging");
    assert.equal(parts.add(p2).status, "whole");
  });

  test("a whole sync in the middle replaces the staging and is handed over", () => {
    const parts = new SyncParts();
    parts.add(syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2)] }, 2)[0]);
    const whole = syncFrame({ seq: 12, tasks: [task(5, 12)] });
    const outcome = parts.add(whole);
    assert.equal(outcome.status, "whole");
    assert.equal(outcome.sync, whole);
    assert.equal(outcome.discarded, "a whole sync arrived");
  });

  test("parts without part 1, bad part numbers and non-list fields are stray", () => {
    const parts = new SyncParts();
    const [, p2] = syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2)] }, 2);
    assert.match(parts.add(p2).why, /without part 1/);
    assert.match(parts.add({ ...p2, part: 3 }).why, /not a part number/);
    assert.match(parts.add({ ...p2, part: "1" }).why, /not a part number/);
    assert.match(parts.add({ ...p2, parts: null }).why, /not a part number/);
    assert.match(parts.add({ ...p2, part: 1, tasks: 42 }).why, /not a list/);
    assert.equal(parts.staging, false);
  });

  test("clear drops the staging", () => {
    const parts = new SyncParts();
    const [p1, p2] = syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2)] }, 2);
    parts.add(p1);
    parts.clear();
    assert.equal(parts.staging, false);
    assert.equal(parts.add(p2).status, "stray");
  });

  test("a long list goes through (no spread onto the stack)", () => {
    const parts = new SyncParts();
    const rows = Array.from({ length: 300_000 }, (_, i) => task(i, 1));
    const [p1, p2] = syncParts({ seq: 1, tasks: rows }, 2);
    parts.add(p1);
    assert.equal(parts.add(p2).sync.tasks.length, 300_000);
  });
});

describe("Store and parts", () => {
  test("applySync refuses a lone part, loudly", () => {
    const store = new Store();
    const [p1] = syncParts({ seq: 9, tasks: [task(1, 1), task(2, 2)] }, 2);
    assert.throws(() => store.applySync(p1), /part 1 of 2; stage the parts with SyncParts/);
    assert.equal(store.last, null);
    assert.equal(store.tasks.size, 0);
  });

  test("a reset in parts replaces everything, only once the last part is in", () => {
    const store = new Store();
    store.applySync(syncFrame({ seq: 5, tasks: [task(1, 1), task(2, 5)] }));
    const parts = new SyncParts();
    const frames = syncParts({ epoch: "e2", seq: 3, reset: true, tasks: [task(7, 1), task(8, 2), task(9, 3)] }, 3);
    for (const frame of frames.slice(0, 2)) parts.add(frame);
    assert.deepEqual([...store.tasks.keys()], [1, 2], "nothing replaced before the last part");
    store.applySync(parts.add(frames[2]).sync);
    assert.deepEqual([...store.tasks.keys()].sort(), [7, 8, 9]);
    assert.deepEqual([store.epoch, store.last], ["e2", 3]);
  });

  test("rows and deletions spread over the parts of a delta are all applied", () => {
    const store = new Store();
    store.applySync(syncFrame({ seq: 10, tasks: [1, 2, 3, 4, 5].map((id) => task(id, id)), agents: [agent(1, 6), agent(2, 7)] }));
    const parts = new SyncParts();
    const frames = syncParts({
      seq: 20, reset: false, tasks: [task(1, 11), task(6, 12)], agents: [agent(3, 13)],
      deleted: { tasks: [2, 3, 4], agents: [1, 2] },
    }, 4);
    assert.ok(frames.filter((f) => f.deleted.tasks.length > 0).length >= 2, "deletions really are spread");
    let outcome;
    for (const frame of frames) outcome = parts.add(frame);
    store.applySync(outcome.sync);
    assert.deepEqual([...store.tasks.keys()].sort(), [1, 5, 6]);
    assert.equal(store.tasks.get(1).version, 11);
    assert.deepEqual([...store.agents.keys()], [3]);
    assert.equal(store.last, 20);
  });
});

describe("SyncParts with a view (protocol v2)", () => {
  const view = { status: null, agent: null, q: null, limit: 200, current: true };
  const counts = { queued: 3, running: 2, succeeded: 0, failed: 0, cancelled: 0, matched: 5 };

  test("the running tasks beside the window are staged with the rows; the view, counts and fp come whole", () => {
    const parts = new SyncParts();
    const frames = syncParts({
      seq: 9, reset: false, view, counts, fp: "f9",
      tasks: [task(5, 1), task(4, 2), task(3, 3)], current: [task(7, 8, { status: "running" }), task(6, 9, { status: "running" })],
      agents: [agent(1, 4)],
    }, 3);
    assert.ok(frames.every((f) => Array.isArray(f.current)), "every part carries the key, as the server sends it");
    let outcome;
    for (const frame of frames) outcome = parts.add(frame);
    assert.equal(outcome.status, "whole");
    const { sync } = outcome;
    assert.deepEqual(sync.current.map((r) => r.id), [7, 6]);
    assert.deepEqual(sync.tasks.map((r) => r.id), [5, 4, 3]);
    assert.deepEqual([sync.view, sync.counts, sync.fp], [view, counts, "f9"]);
    const store = new Store();
    store.applySync(sync);
    assert.deepEqual([...store.current.keys()], [7, 6]);
    assert.deepEqual(store.counts, counts);
  });

  test("without `current` in the first part, none is made up", () => {
    const parts = new SyncParts();
    let outcome;
    for (const frame of syncParts({ seq: 2, view: { ...view, current: false }, counts, tasks: [task(1, 1), task(2, 2)] }, 2)) outcome = parts.add(frame);
    assert.equal("current" in outcome.sync, false);
  });
});

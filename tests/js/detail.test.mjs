import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Timeline, duration } from "../../static/detail/timeline.js";
import { AgentVersion, GONE, taskVersion } from "../../static/detail/versions.js";
import { Store } from "../../static/realtime/store.js";

/** A TimelineView that keeps the list as seq numbers, newest first. */
class FakeView {
  seqs = [];
  older = false;
  fields = null;
  deleted = false;
  errors = [];
  constructor(seqs = []) {
    this.seqs = [...seqs];
  }
  prepend(items) {
    this.seqs.unshift(...items.map((i) => i.seq));
  }
  append(items) {
    this.seqs.push(...items.map((i) => i.seq));
  }
  replace(items) {
    this.seqs = items.map((i) => i.seq);
  }
  trim(max) {
    const over = this.seqs.length > max;
    this.seqs = this.seqs.slice(0, max);
    return over;
  }
  oldestSeq() {
    return this.seqs.length ? this.seqs.at(-1) : null;
  }
  setOlder(on) {
    this.older = on;
  }
  setFields(html) {
    this.fields = html;
  }
  setDeleted(on) {
    this.deleted = on;
  }
  failed(error) {
    this.errors.push(error);
  }
}

const items = (...seqs) => seqs.map((seq) => ({ seq, html: `<li data-seq="${seq}"></li>` }));

/** A fetch that answers from a queue of responses, one by one, when told to. */
function fakeFetch() {
  const calls = [];
  const fetchJson = (url) => new Promise((resolve, reject) => calls.push({ url, resolve, reject }));
  return { calls, fetchJson };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("timeline", () => {
  test("a newer version fetches the items after the newest shown and puts them on top", async () => {
    const view = new FakeView([5, 3]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/tasks/1/timeline", after: 5, version: 5, view, fetchJson });
    assert.equal(timeline.want(5), null, "the version the page shows: no fetch");
    const done = timeline.want(7);
    assert.deepEqual(calls.map((c) => c.url), ["/tasks/1/timeline?after=5"]);
    calls[0].resolve({ items: items(7, 6), reset: false, version: 7, fields_html: "<dl>7</dl>" });
    await done;
    assert.deepEqual(view.seqs, [7, 6, 5, 3]);
    assert.equal(view.fields, "<dl>7</dl>");
    assert.equal(timeline.known, 7);
    assert.equal(timeline.newest, 7);
  });

  test("changes during a fetch cost one more fetch, not one each; duplicates are dropped", async () => {
    const view = new FakeView([2]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 2, version: 2, view, fetchJson });
    const done = timeline.want(3);
    timeline.want(4);
    timeline.want(5);
    assert.equal(calls.length, 1);
    calls[0].resolve({ items: items(3), version: 3 });
    await tick();
    assert.equal(calls.length, 2);
    assert.equal(calls[1].url, "/t?after=3");
    calls[1].resolve({ items: items(5, 4, 3), version: 5 });
    await done;
    assert.equal(calls.length, 2);
    assert.deepEqual(view.seqs, [5, 4, 3, 2]);
  });

  test("a reset replaces the list and shows the older button", async () => {
    const view = new FakeView([10]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 10, version: 10, view, fetchJson });
    const done = timeline.want(200);
    calls[0].resolve({ items: items(200, 199, 198), reset: true, older: true, version: 200 });
    await done;
    assert.deepEqual(view.seqs, [200, 199, 198]);
    assert.equal(view.older, true);
    assert.equal(timeline.newest, 200);
  });

  test("older pages append below; the list stays bounded, the rest behind the button", async () => {
    const view = new FakeView([9, 8]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 9, version: 9, view, fetchJson, max: 4 });
    const older = timeline.older();
    assert.equal(calls[0].url, "/t?before=8");
    calls[0].resolve({ items: items(8, 7, 6), older: false });
    await older;
    assert.deepEqual(view.seqs, [9, 8, 7, 6]);
    assert.equal(view.older, false);
    const done = timeline.want(11);
    calls[1].resolve({ items: items(11, 10), version: 11 });
    await done;
    assert.deepEqual(view.seqs, [11, 10, 9, 8]);
    assert.equal(view.older, true);
  });

  test("a failed fetch is retried after a pause, while the page is still behind", async () => {
    const view = new FakeView([]);
    const { calls, fetchJson } = fakeFetch();
    const timers = [];
    const timeline = new Timeline({ url: "/t", after: 0, version: 1, view, fetchJson, setTimeout: (fn, ms) => timers.push({ fn, ms }) });
    const done = timeline.want(2);
    calls[0].reject(new Error("offline"));
    await done;
    assert.equal(view.errors.length, 1);
    assert.deepEqual(timers.map((t) => t.ms), [3000]);
    timers[0].fn();
    assert.equal(calls.length, 2);
    calls[1].resolve({ items: items(2), version: 2 });
    await tick();
    assert.deepEqual(view.seqs, [2]);
  });

  test("a deleted object stops the page asking", async () => {
    const view = new FakeView([4]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 4, version: 4, view, fetchJson });
    const done = timeline.want(GONE);
    calls[0].resolve({ items: items(5), version: 5, deleted: true });
    await done;
    assert.equal(view.deleted, true);
    assert.equal(timeline.want(GONE), null);
    assert.equal(calls.length, 1);
  });
});

describe("versions from the store", () => {
  const sync = (store, tasks, agents = []) => store.applySync({ type: "sync", epoch: "e", seq: 10, reset: true, tasks, agents, deleted: {} });

  test("a task's version; none before the first sync; GONE once it is deleted", () => {
    const store = new Store();
    const timeline = { deleted: false };
    assert.equal(taskVersion(store, 1, timeline), null);
    sync(store, [{ id: 1, version: 4 }]);
    assert.equal(taskVersion(store, 1, timeline), 4);
    store.applyEvent({ type: "event", seq: 11, entity: "task", op: "delete", data: { id: 1 } });
    assert.equal(taskVersion(store, 1, timeline), GONE);
    timeline.deleted = true;
    assert.equal(taskVersion(store, 1, timeline), null);
  });

  test("an agent's version counts its row and its tasks', also a task that leaves it", () => {
    const store = new Store();
    const versions = new AgentVersion(7);
    sync(store, [{ id: 1, agent: 7, version: 5 }, { id: 2, agent: 8, version: 9 }], [{ id: 7, version: 3 }]);
    assert.equal(versions.update(store), 5);
    store.applyEvent({ type: "event", seq: 11, entity: "task", op: "upsert", data: { id: 2, agent: 8, version: 11 } });
    assert.equal(versions.update(store), null, "another agent's task");
    store.applyEvent({ type: "event", seq: 12, entity: "task", op: "upsert", data: { id: 1, agent: null, version: 12 } });
    assert.equal(versions.update(store), 12, "requeued: it left this agent");
    store.applyEvent({ type: "event", seq: 13, entity: "task", op: "upsert", data: { id: 1, agent: null, version: 13 } });
    assert.equal(versions.update(store), null, "no longer ours");
    store.applyEvent({ type: "event", seq: 14, entity: "agent", op: "delete", data: { id: 7 } });
    assert.equal(versions.update(store), GONE);
  });
});

describe("durations", () => {
  test("read like the server's", () => {
    assert.equal(duration(0.85), "850 ms");
    assert.equal(duration(42.9), "42 s");
    assert.equal(duration(185), "3 min 5 s");
    assert.equal(duration(3600 * 2 + 600), "2 h 10 min");
    assert.equal(duration(86400 * 3 + 3600 * 4 + 5), "3 d 4 h");
    assert.equal(duration(120), "2 min");
    assert.equal(duration(null), "—");
  });
});

// The task page's parts that run without a browser: a timeline whose top item is a run of
// progress reports (static/detail/timeline.js), and the actions' rules and words
// (static/detail/actions.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Timeline } from "../../static/detail/timeline.js";
import { ACTIONS, offered, outcome, plan, recheck, words } from "../../static/detail/actions.js";

/** A TimelineView over {seq, first} items, newest first; `fold` marks a run's top item. */
class RunView {
  constructor(items) {
    this.items = items.map((i) => ({ ...i }));
    this.removed = [];
  }
  prepend(items) {
    this.items.unshift(...items.map((i) => ({ seq: i.seq, first: i.first ?? i.seq, fold: i.fold })));
  }
  append(items) {
    this.items.push(...items.map((i) => ({ seq: i.seq, first: i.first ?? i.seq })));
  }
  replace(items) {
    this.items = items.map((i) => ({ seq: i.seq, first: i.first ?? i.seq }));
  }
  remove(seq) {
    this.removed.push(seq);
    this.items = this.items.filter((i) => i.seq !== seq);
  }
  trim() {
    return false;
  }
  oldestSeq() {
    return this.items.length ? this.items.at(-1).first : null;
  }
  topRun() {
    return this.items[0]?.fold ? this.items[0].first : null;
  }
  setOlder() {}
  setFields() {}
  setDeleted() {}
}

function fakeFetch() {
  const calls = [];
  const fetchJson = (url) => new Promise((resolve, reject) => calls.push({ url, resolve, reject }));
  return { calls, fetchJson };
}

describe("a timeline whose top item is a run of progress reports", () => {
  test("the fetch says where the run starts, and the extended run takes its place", async () => {
    const view = new RunView([{ seq: 20, first: 12, fold: true }, { seq: 11, first: 11 }]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/tasks/1/timeline", after: 20, version: 20, view, fetchJson });
    const done = timeline.want(22);
    assert.deepEqual(calls.map((c) => c.url), ["/tasks/1/timeline?after=20&run=12"]);
    calls[0].resolve({ items: [{ seq: 22, first: 12, fold: true, html: "" }], replaces: 20, version: 22 });
    await done;
    assert.deepEqual(view.items.map((i) => [i.seq, i.first]), [[22, 12], [11, 11]]);
    assert.deepEqual(view.removed, [20]);
    assert.equal(timeline.newest, 22);
  });

  test("a top item that is no run sends no run; older pages start below a run's oldest change", async () => {
    const view = new RunView([{ seq: 30, first: 30 }, { seq: 29, first: 5, fold: true }]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 30, version: 30, view, fetchJson });
    const done = timeline.want(31);
    assert.equal(calls[0].url, "/t?after=30");
    calls[0].resolve({ items: [{ seq: 31, html: "" }], version: 31 });
    await done;
    assert.deepEqual(view.removed, [], "nothing replaced without `replaces`");
    const older = timeline.older();
    assert.equal(calls[1].url, "/t?before=5");
    calls[1].resolve({ items: [{ seq: 4, html: "" }, { seq: 3, html: "" }], older: false });
    await older;
    assert.deepEqual(view.items.map((i) => i.seq), [31, 30, 29, 4, 3]);
  });
});

describe("the task page's actions", () => {
  const row = (status) => ({ id: 7, status, version: 40, title: "Render the report" });

  test("which actions each status offers", () => {
    const offers = (status) => Object.keys(ACTIONS).filter((action) => offered(action, status));
    assert.deepEqual(offers("queued"), ["cancel"]);
    assert.deepEqual(offers("running"), ["cancel", "fail"]);
    assert.deepEqual(offers("failed"), ["requeue"]);
    assert.deepEqual(offers("cancelled"), ["requeue"]);
    assert.deepEqual(offers("succeeded"), []);
  });

  test("cancel and requeue confirm with the dashboard's words and count", () => {
    const said = words(plan("cancel", row("running")));
    assert.deepEqual(said, {
      title: "Cancel 1 task?", text: "1 task will be asked to cancel.", button: "Cancel 1 task", reason: false,
    });
    assert.equal(words(plan("requeue", row("failed"))).button, "Requeue 1 task");
  });

  test("mark failed asks for a reason; a task no longer running has nothing to mark", () => {
    const said = words(plan("fail", row("running")));
    assert.equal(said.title, "Mark 1 task failed?");
    assert.equal(said.button, "Mark 1 task failed");
    assert.equal(said.reason, true);
    const none = words(plan("fail", row("succeeded")));
    assert.equal(none.button, "");
    assert.match(none.text, /cannot be marked failed \(succeeded\)/);
  });

  test("at confirm, a task that changed meanwhile is not sent, and the page says so", () => {
    const planned = plan("fail", row("running"));
    const { send, changed } = recheck(planned, () => row("succeeded"));
    assert.deepEqual(send, []);
    assert.equal(outcome("fail", { changed }), "The task changed before it could be sent (now succeeded) and was left alone.");
    assert.equal(outcome("cancel", { result: { ok: true } }), "Cancelled.");
    assert.equal(outcome("fail", { result: { ok: false, error: "Task 7 is already failed." } }),
      "The server refused to mark it failed: Task 7 is already failed.");
  });
});

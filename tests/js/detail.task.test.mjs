// The task page's parts that run without a browser: a timeline whose top item is a run of
// progress reports (static/detail/timeline.js), and the actions' rules and words
// (static/detail/actions.js).
import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Timeline } from "../../static/detail/timeline.js";
import { ACTIONS, offered, outcome, plan, recheck, words } from "../../static/detail/actions.js";

/**
 * A TimelineView over {seq, first, fold, changes} items, newest first: `fold` marks a
 * progress-only item, `changes` the seq numbers of the elements it holds (a folded line's
 * reports, newest first; one change's own number).
 */
class RunView {
  constructor(items) {
    this.items = items.map((i) => RunView.item(i));
    this.removed = [];
    this.extended = [];
  }
  static item(i) {
    return { seq: i.seq, first: i.first ?? i.seq, fold: Boolean(i.fold), changes: i.changes ?? [i.seq] };
  }
  prepend(items) {
    this.items.unshift(...items.map((i) => RunView.item(i)));
  }
  append(items) {
    this.items.push(...items.map((i) => RunView.item(i)));
  }
  replace(items) {
    this.items = items.map((i) => RunView.item(i));
  }
  remove(seq) {
    this.removed.push(seq);
    this.items = this.items.filter((i) => i.seq !== seq);
  }
  extend(seq, item) {
    const line = this.items.find((i) => i.seq === seq && i.changes.length > 1);
    if (!line) return false;
    this.extended.push(seq);
    Object.assign(line, { seq: item.seq, first: item.first, changes: [...item.changes, ...line.changes] });
    return true;
  }
  trim() {
    return false;
  }
  oldestSeq() {
    return this.items.length ? this.items.at(-1).changes.at(-1) : null;
  }
  topRun() {
    return this.items[0]?.fold ? this.items[0].first : null;
  }
  /** Every change's number, in the order the page shows them. */
  seqs() {
    return this.items.flatMap((i) => i.changes);
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
  test("one change that a new report continues: the line the server sends takes its place", async () => {
    const view = new RunView([{ seq: 20, fold: true }, { seq: 11 }]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/tasks/1/timeline", after: 20, version: 20, view, fetchJson });
    const done = timeline.want(22);
    assert.deepEqual(calls.map((c) => c.url), ["/tasks/1/timeline?after=20&run=20"]);
    calls[0].resolve({ items: [{ seq: 22, first: 20, fold: true, changes: [22, 20], html: "" }], replaces: 20, version: 22 });
    await done;
    assert.deepEqual(view.items.map((i) => [i.seq, i.first]), [[22, 20], [11, 11]]);
    assert.deepEqual(view.removed, [20]);
    assert.deepEqual(view.seqs(), [22, 20, 11]);
    assert.equal(timeline.newest, 22);
  });

  test("a folded line goes on: its new reports on top of its own, newer lines above it", async () => {
    const view = new RunView([{ seq: 20, first: 12, fold: true, changes: [20, 16, 12] }, { seq: 11 }]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 20, version: 20, view, fetchJson });
    const done = timeline.want(30);
    assert.equal(calls[0].url, "/t?after=20&run=12");
    calls[0].resolve({
      items: [
        { seq: 30, first: 30, changes: [30], html: "" }, // a status change on top
        { seq: 25, first: 12, fold: true, changes: [25, 22], html: "" }, // the line, with its new reports only
      ],
      extends: 20, version: 30,
    });
    await done;
    assert.deepEqual(view.extended, [20]);
    assert.deepEqual(view.removed, []);
    assert.deepEqual(view.items.map((i) => [i.seq, i.first]), [[30, 30], [25, 12], [11, 11]]);
    assert.deepEqual(view.seqs(), [30, 25, 22, 20, 16, 12, 11], "one element per change, newest first");
    assert.equal(timeline.newest, 30);
    const next = timeline.want(31);
    assert.equal(calls[1].url, "/t?after=30", "the top item is no run now");
    calls[1].resolve({ items: [{ seq: 31, html: "" }], version: 31 });
    await next;
  });

  test("a line the page does not have: the page takes the newest page afresh", async () => {
    const view = new RunView([{ seq: 20, first: 20, fold: true }]);
    const { calls, fetchJson } = fakeFetch();
    const timeline = new Timeline({ url: "/t", after: 20, version: 20, view, fetchJson });
    const done = timeline.want(22);
    calls[0].resolve({ items: [{ seq: 22, first: 12, fold: true, changes: [22], html: "" }], extends: 20, version: 22 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls.map((c) => c.url), ["/t?after=20&run=20", "/t"]);
    assert.deepEqual(view.seqs(), [20], "nothing half applied");
    calls[1].resolve({ items: [{ seq: 22, first: 12, fold: true, changes: [22, 20, 12], html: "" }], reset: true, version: 22 });
    await done;
    assert.deepEqual(view.seqs(), [22, 20, 12]);
    assert.equal(timeline.newest, 22);
  });

  test("a top item that is no run sends no run; older pages start below the oldest change shown", async () => {
    const view = new RunView([{ seq: 30 }, { seq: 29, first: 5, fold: true, changes: [29, 17, 5] }]);
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
    assert.deepEqual(view.seqs(), [31, 30, 29, 17, 5, 4, 3]);
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

import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  PendingActions, allows, confirmation, errorText, plan, recheck, rowAction, sendAll, summary,
} from "../../static/dashboard/actions.js";

const rows = new Map([
  [1, { id: 1, status: "queued", version: 10, title: "one" }],
  [2, { id: 2, status: "running", version: 11, title: "two" }],
  [3, { id: 3, status: "succeeded", version: 12, title: "three" }],
  [4, { id: 4, status: "failed", version: 13, title: "four" }],
]);
const rowOf = (id) => rows.get(id);

describe("rules", () => {
  test("cancel takes queued and running; requeue failed and cancelled; succeeded has none", () => {
    assert.ok(allows("cancel", "queued") && allows("cancel", "running") && !allows("cancel", "failed"));
    assert.ok(allows("requeue", "failed") && allows("requeue", "cancelled") && !allows("requeue", "running"));
    assert.deepEqual(["queued", "running", "succeeded", "failed", "cancelled"].map(rowAction),
      ["cancel", "cancel", null, "requeue", "requeue"]);
  });
});

describe("the confirmation", () => {
  test("counts what applies among the selection when it opens, and names what does not", () => {
    const planned = plan("cancel", [1, 2, 3, 99], rowOf);
    assert.deepEqual(planned.eligible.map((i) => i.id), [1, 2]);
    assert.deepEqual(planned.skipped.map((i) => [i.id, i.status]), [[3, "succeeded"]]);
    const words = confirmation(planned);
    assert.equal(words.title, "Cancel 2 tasks?");
    assert.equal(words.button, "Cancel 2 tasks");
    assert.equal(words.text, "2 tasks will be asked to cancel. 1 selected task cannot be cancelled (succeeded) and will be left as it is.");
  });

  test("one task, and nothing to do", () => {
    assert.equal(confirmation(plan("requeue", [4], rowOf)).title, "Requeue 1 task?");
    const none = confirmation(plan("requeue", [1], rowOf));
    assert.deepEqual([none.title, none.button], ["Nothing to requeue", ""]);
  });

  test("the plan is frozen: a later change of a row does not change it", () => {
    const live = new Map(rows);
    const planned = plan("cancel", [1, 2], (id) => live.get(id));
    live.set(2, { ...live.get(2), status: "succeeded", version: 20 });
    assert.equal(confirmation(planned).title, "Cancel 2 tasks?");
  });
});

describe("at confirm", () => {
  test("rows whose status changed meanwhile are reported, not sent; progress alone does not count", () => {
    const live = new Map(rows);
    const planned = plan("cancel", [1, 2], (id) => live.get(id));
    live.set(1, { ...live.get(1), status: "running", version: 30 });
    live.set(2, { ...live.get(2), progress: 50, version: 31 });
    const { send, changed } = recheck(planned, (id) => live.get(id));
    assert.deepEqual(send.map((i) => [i.id, i.version]), [[2, 31]]);
    assert.deepEqual(changed.map((i) => [i.id, i.now]), [[1, "running"]]);
    live.delete(2);
    assert.deepEqual(recheck(planned, (id) => live.get(id)).changed.map((i) => i.now), ["running", "deleted"]);
  });

  test("sendAll posts each, a few at a time, and keeps the order of the results", async () => {
    let inFlight = 0;
    let most = 0;
    const seen = [];
    const post = async (id, action) => {
      seen.push([id, action]);
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight -= 1;
      if (id === 3) return { ok: false, status: 400, body: { status: ["Task 3 is succeeded; it cannot be cancelled."] } };
      if (id === 4) throw new TypeError("Failed to fetch");
      return { ok: true, status: 200, body: { id, version: id * 100 } };
    };
    const items = [1, 2, 3, 4, 5, 6].map((id) => ({ id }));
    const results = await sendAll("cancel", items, post, { concurrency: 2 });
    assert.equal(most, 2);
    assert.equal(seen.length, 6);
    assert.deepEqual(results.map((r) => r.id), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(results[0], { id: 1, ok: true, version: 100 });
    assert.deepEqual(results[2], { id: 3, ok: false, error: "Task 3 is succeeded; it cannot be cancelled." });
    assert.equal(results[3].error, "not sent (Failed to fetch)");
  });

  test("the result line says what was done, what changed meanwhile and what was refused", () => {
    const text = summary("cancel", {
      results: [{ id: 1, ok: true }, { id: 2, ok: true }, { id: 3, ok: false, error: "Too many requests." }],
      changed: [{ id: 4, now: "succeeded" }],
    });
    assert.equal(text, "Cancelled 2 of 4 tasks. 1 task changed before it could be sent (now succeeded) and was left alone. "
      + "The server refused to cancel 1: Too many requests.");
    assert.equal(summary("requeue", { results: [{ id: 1, ok: true }], changed: [] }), "Requeued 1 of 1 task.");
  });

  test("errorText reads DRF's answers", () => {
    assert.equal(errorText({ status: 403, body: { detail: "No." } }), "No.");
    assert.equal(errorText({ status: 400, body: { status: ["a", "b"] } }), "a b");
    assert.equal(errorText({ status: 502, body: null }), "HTTP 502");
  });
});

describe("PendingActions", () => {
  test("pending until the row reaches the version the API answered with", () => {
    const live = new Map([[1, { id: 1, status: "running", version: 10 }]]);
    const pending = new PendingActions();
    pending.start(1, "cancel", 10);
    assert.equal(pending.get(1), "cancel");
    pending.answered(1, 12);
    live.set(1, { id: 1, status: "running", version: 11 }); // a progress report first
    assert.deepEqual(pending.settle((id) => live.get(id)), []);
    live.set(1, { id: 1, status: "cancelled", version: 12 });
    assert.deepEqual(pending.settle((id) => live.get(id)), [1]);
    assert.equal(pending.get(1), null);
  });

  test("the stream can arrive before the answer: the target status at a newer version settles it", () => {
    const pending = new PendingActions();
    pending.start(1, "requeue", 10);
    assert.deepEqual(pending.settle(() => ({ status: "failed", version: 10 })), []);
    assert.deepEqual(pending.settle(() => ({ status: "queued", version: 11 })), [1]);
  });

  test("a refused request and a deleted row leave nothing pending", () => {
    const pending = new PendingActions();
    pending.start(1, "cancel", 1);
    pending.drop(1);
    assert.equal(pending.get(1), null);
    pending.start(2, "cancel", 1);
    assert.deepEqual(pending.settle(() => undefined), [2]);
  });
});

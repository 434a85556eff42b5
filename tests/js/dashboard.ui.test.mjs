import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Badge, describeConnection } from "../../static/dashboard/badge.js";
import { FrameScheduler } from "../../static/dashboard/schedule.js";
import { windowRange } from "../../static/dashboard/virtual.js";
import { FakeClock } from "./fakes.mjs";

const status = (extra = {}) => ({
  state: "open", attempt: 0, retryAt: null, reason: null, rtt: null, lastMessageAt: null,
  epoch: "e", last: 1, interval: 25000, ...extra,
});

describe("connection badge text", () => {
  test("live with the round-trip time", () => {
    const v = describeConnection(status({ rtt: 3.6 }), 0);
    assert.deepEqual([v.text, v.rtt, v.retry, v.signIn], ["Live", "4 ms", false, false]);
  });

  test("first connect vs reconnect", () => {
    assert.equal(describeConnection(status({ state: "connecting" }), 0).text, "Connecting…");
    assert.equal(describeConnection(status({ state: "connecting", attempt: 2 }), 0).text, "Reconnecting…");
  });

  test("waiting counts down and offers Retry now", () => {
    const v = describeConnection(status({ state: "waiting", retryAt: 10_000, attempt: 1 }), 5_900);
    assert.deepEqual([v.text, v.retry, v.state], ["Reconnecting in 5 s", true, "waiting"]);
  });

  test("offline says how old the data is", () => {
    const at = new Date(2024, 0, 1, 14, 2, 11).getTime();
    assert.equal(describeConnection(status({ state: "offline", lastMessageAt: at }), at).text, "Offline · data as of 14:02:11");
  });

  test("signed out and forbidden offer a sign-in link; a client bug offers reload; nothing retries", () => {
    const out = describeConnection(status({ state: "stopped", reason: "signed_out" }), 0);
    assert.deepEqual([out.text, out.signIn, out.retry, out.reload], ["Signed out", true, false, false]);
    const forbidden = describeConnection(status({ state: "stopped", reason: "forbidden" }), 0);
    assert.deepEqual([forbidden.text, forbidden.signIn, forbidden.reload], ["No longer allowed to view this dashboard", true, false]);
    const bug = describeConnection(status({ state: "stopped", reason: "protocol" }), 0);
    assert.deepEqual([bug.reload, bug.retry, bug.signIn], [true, false, false]);
  });

  test("closed by an operator: says so and offers Reload, not Retry", () => {
    const v = describeConnection(status({ state: "stopped", reason: "closed_by_operator" }), 0);
    assert.deepEqual([v.text, v.reload, v.retry, v.signIn], ["Closed by an operator", true, false, false]);
  });

  test("too many dashboards: counts down its retry", () => {
    const v = describeConnection(status({ state: "waiting", reason: "too_many_dashboards", retryAt: 4_000, attempt: 1 }), 0);
    assert.deepEqual([v.text, v.retry], ["Too many open dashboards · retrying in 4 s", true]);
  });

  test("the server's words for a close are the detail and part of the announcement, only while not connected", () => {
    const message = "operator has 30 dashboards open already; close some and retry";
    const waiting = describeConnection(status({ state: "waiting", reason: "too_many_dashboards", retryAt: 9_000, message }), 0);
    assert.equal(waiting.detail, message);
    assert.ok(waiting.announce.endsWith(`The server said: ${message}`), waiting.announce);
    const stopped = describeConnection(status({ state: "stopped", reason: "closed_by_operator", message: "closed from the admin" }), 0);
    assert.equal(stopped.detail, "closed from the admin");
    assert.equal(describeConnection(status({ message }), 0).detail, "", "never beside Live");
    assert.equal(describeConnection(status({ state: "stopped", reason: "signed_out" }), 0).detail, "");
  });
});

/** Plain objects are enough: the badge only sets textContent, hidden and dataset. */
function fakeEls() {
  const el = () => ({ textContent: "", hidden: false, dataset: {}, title: "" });
  return { root: el(), text: el(), rtt: el(), retry: el(), signIn: el(), reload: el(), status: el(), body: el(), detail: el() };
}

describe("Badge", () => {
  test("sets data-connection on the pill and the body, and shows only the actions that apply", () => {
    const clock = new FakeClock();
    const els = fakeEls();
    const badge = new Badge(els, clock);
    badge.update(status({ state: "stopped", reason: "signed_out" }), 0);
    assert.equal(els.root.dataset.connection, "stopped");
    assert.equal(els.body.dataset.connection, "stopped");
    assert.deepEqual([els.signIn.hidden, els.retry.hidden, els.reload.hidden], [false, true, true]);
    assert.equal(els.text.textContent, "Signed out");
    assert.equal(els.detail.hidden, true);
  });

  test("shows the server's words in the detail and the pill's tooltip, and clears them once connecting", () => {
    const clock = new FakeClock();
    const els = fakeEls();
    const badge = new Badge(els, clock);
    badge.update(status({ state: "stopped", reason: "closed_by_operator", message: "closed from the admin" }), 0);
    assert.deepEqual([els.text.textContent, els.detail.textContent, els.detail.hidden, els.root.title, els.reload.hidden],
      ["Closed by an operator", "closed from the admin", false, "closed from the admin", false]);
    clock.advance(1000);
    assert.equal(els.status.textContent, "An operator closed this dashboard. Reload the page to continue. The server said: closed from the admin");
    badge.update(status({ state: "connecting", attempt: 1 }), clock.now);
    assert.deepEqual([els.detail.hidden, els.root.title], [true, ""]);
  });

  test("announces a meaning once it has held for a second, once, and not for a flap", () => {
    const clock = new FakeClock();
    const els = fakeEls();
    const badge = new Badge(els, clock);
    badge.update(status(), 0);
    clock.advance(1000);
    assert.equal(els.status.textContent, "Live: updates are on.");
    badge.update(status({ state: "waiting", retryAt: 3000, attempt: 1 }), clock.now);
    clock.advance(500);
    badge.update(status(), clock.now); // back within half a second: nothing to say
    clock.advance(5000);
    assert.equal(els.status.textContent, "Live: updates are on.");
    badge.update(status({ state: "waiting", retryAt: clock.now + 9000, attempt: 1 }), clock.now);
    for (let i = 0; i < 3; i += 1) {
      clock.advance(400);
      badge.tick(clock.now); // the countdown moves every second but says the same thing
    }
    assert.equal(els.status.textContent, "Connection lost. Reconnecting.");
    assert.match(els.text.textContent, /^Reconnecting in \d s$/);
  });
});

describe("FrameScheduler", () => {
  function rig(burstWindow = 250) {
    const clock = new FakeClock();
    const frames = [];
    let renders = 0;
    const s = new FrameScheduler(() => { renders += 1; }, {
      requestFrame: (cb) => frames.push(cb), setTimeout: clock.setTimeout, now: () => clock.now, burstWindow,
    });
    const frame = () => frames.splice(0).forEach((cb) => cb());
    return { s, clock, frame, get renders() { return renders; }, frames };
  }

  test("many requests before a frame make one render", () => {
    const r = rig();
    for (let i = 0; i < 500; i += 1) r.s.request();
    assert.equal(r.frames.length, 1);
    r.frame();
    assert.equal(r.renders, 1);
  });

  test("under a steady stream, renders come at most every burst window", () => {
    const r = rig(250);
    let t = 0;
    for (; t < 2000; t += 10) {
      r.s.request();
      r.clock.advance(10);
      r.frame();
    }
    assert.ok(r.renders <= 2000 / 250 + 1, `${r.renders} renders in 2 s`);
    assert.ok(r.renders >= 2000 / 250 - 1);
  });

  test("after a quiet spell the next change renders on the next frame", () => {
    const r = rig(250);
    r.s.request();
    r.frame();
    r.clock.advance(1000);
    r.s.request();
    assert.equal(r.frames.length, 1);
    r.frame();
    assert.equal(r.renders, 2);
  });

  test("flush renders a pending request at once, and the late frame then does nothing", () => {
    const r = rig();
    r.s.request();
    r.s.flush();
    r.frame();
    assert.equal(r.renders, 1);
  });
});

describe("windowRange", () => {
  const base = { scrollTop: 0, viewport: 440, rowHeight: 44, offset: 34, count: 10_000, margin: 5 };

  test("at the top: the rows in view plus the margin below", () => {
    assert.deepEqual(windowRange(base), [0, 15]);
  });

  test("scrolled: a margin on both sides; never outside [0, count]", () => {
    assert.deepEqual(windowRange({ ...base, scrollTop: 44 * 100 }), [95, 115]);
    assert.deepEqual(windowRange({ ...base, scrollTop: 44 * 9_999 }), [9_994, 10_000]);
    assert.deepEqual(windowRange({ ...base, count: 3 }), [0, 3]);
    assert.deepEqual(windowRange({ ...base, count: 0 }), [0, 0]);
  });

  test("the window stays small whatever the count", () => {
    for (const scrollTop of [0, 1234, 99_999, 440_000]) {
      const [start, end] = windowRange({ ...base, scrollTop });
      assert.ok(end - start <= Math.ceil(base.viewport / base.rowHeight) + 2 * base.margin + 1);
    }
  });
});

describe("Badge while paused", () => {
  test("a live link says Paused and is marked, and says Live again when resumed", () => {
    const clock = new FakeClock();
    const els = fakeEls();
    const badge = new Badge(els, clock);
    badge.update(status({ rtt: 5 }), 0);
    badge.setPaused(true, 0);
    assert.deepEqual([els.text.textContent, els.root.dataset.paused, els.root.dataset.connection], ["Paused", "true", "open"]);
    badge.update(status({ state: "waiting", retryAt: 2000 }), 0);
    assert.deepEqual([els.text.textContent, els.root.dataset.paused], ["Reconnecting in 2 s", "false"], "a lost link says so, paused or not");
    badge.update(status(), 0);
    badge.setPaused(false, 0);
    assert.deepEqual([els.text.textContent, els.root.dataset.paused], ["Live", "false"]);
  });
});

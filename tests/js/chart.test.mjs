import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HEIGHT, ThroughputChart, WIDTH, barGeometry, linePath, niceMax, summarize } from "../../static/dashboard/chart.js";

const minutes = (n) => Array.from({ length: n }, (_, i) => new Date(Date.UTC(2026, 0, 1, 12, i)).toISOString());

describe("chart geometry", () => {
  test("scales round up to 1, 2, 5 times a power of ten", () => {
    assert.deepEqual([0, 1, 3, 7, 12, 51, 180].map(niceMax), [1, 1, 5, 10, 20, 100, 200]);
  });

  test("bars stack failed on succeeded, scaled to the busiest minute; unknown minutes have none", () => {
    const data = { minutes: minutes(4), succeeded: [null, 2, 0, 8], failed: [null, 2, 0, 2] };
    const { max, bars } = barGeometry(data);
    assert.equal(max, 10);
    assert.equal(bars[0].succeeded, null);
    assert.deepEqual([bars[1].succeeded.h, bars[1].failed.h], [HEIGHT * 0.2, HEIGHT * 0.2]);
    assert.equal(bars[1].failed.y + bars[1].failed.h, bars[1].succeeded.y, "failed sits on succeeded");
    assert.equal(bars[3].succeeded.y + bars[3].succeeded.h, HEIGHT);
    assert.equal(bars[2].succeeded.h, 0);
    assert.ok(bars.every((b) => b.x >= 0 && b.x + b.w <= WIDTH));
  });

  test("the queue line lifts the pen over unknown minutes", () => {
    const { d, max } = linePath([null, 4, 2, null, 5], 400, 100);
    assert.equal(max, 5);
    assert.equal(d, "M100.0 20.0L200.0 60.0M400.0 0.0");
    assert.equal(linePath([null, null]).d, "");
  });

  test("totals: the hour's succeeded and failed, the queue now", () => {
    assert.deepEqual(summarize({ succeeded: [null, 1, 2], failed: [null, 0, 3], queued: [null, 4, 6] }), { succeeded: 3, failed: 3, queued: 6 });
  });
});

/** Timers run by hand. */
function fakeTimers() {
  let clock = 0;
  let next = 1;
  const timers = new Map();
  return {
    now: () => clock,
    setTimeout: (fn, ms) => {
      timers.set(next, { fn, at: clock + ms });
      return next++;
    },
    clearTimeout: (id) => timers.delete(id),
    pending: () => [...timers.values()].map((t) => t.at - clock),
    async advance(ms) {
      clock += ms;
      for (const [id, t] of [...timers]) {
        if (t.at <= clock) {
          timers.delete(id);
          await t.fn();
        }
      }
    },
  };
}

describe("chart refresh schedule", () => {
  const data = { minutes: minutes(2), succeeded: [0, 1], failed: [0, 0], queued: [3, 2] };

  function chart(timers, fetched, hidden = () => false) {
    const root = { dataset: {}, ownerDocument: null, querySelector: () => null };
    const c = new ThroughputChart({
      root, url: "/charts/throughput", now: timers.now, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout, hidden,
      fetchJson: async (url) => {
        fetched.push(url);
        return data;
      },
    });
    c.render = () => {}; // the DOM part is the browser test's
    return c;
  }

  test("fetches at once, then every interval; a change asks sooner but not more than once per gap", async () => {
    const timers = fakeTimers();
    const fetched = [];
    const c = chart(timers, fetched);
    c.start();
    await timers.advance(0);
    assert.equal(fetched.length, 1);
    assert.deepEqual(timers.pending(), [5000]);
    c.soon();
    assert.deepEqual(timers.pending(), [1500], "one timer: the earlier of the two");
    c.soon();
    assert.deepEqual(timers.pending(), [1500]);
    await timers.advance(1500);
    assert.equal(fetched.length, 2);
    assert.deepEqual(timers.pending(), [5000]);
  });

  test("a background tab skips its polls", async () => {
    const timers = fakeTimers();
    const fetched = [];
    let hidden = true;
    const c = chart(timers, fetched, () => hidden);
    c.start();
    await timers.advance(0);
    await timers.advance(5000);
    assert.equal(fetched.length, 0);
    hidden = false;
    await timers.advance(5000);
    assert.equal(fetched.length, 1);
  });

  test("held (the dashboard is paused), it draws its first picture, then nothing until released", async () => {
    const timers = fakeTimers();
    const fetched = [];
    const c = chart(timers, fetched);
    c.hold(true);
    c.start();
    await timers.advance(0);
    assert.equal(fetched.length, 1, "the page loaded paused still gets its picture");
    c.soon();
    await timers.advance(5000);
    await timers.advance(5000);
    assert.equal(fetched.length, 1);
    assert.equal(c.held, true);
    c.hold(false);
    await timers.advance(1500);
    assert.equal(fetched.length, 2, "released: at once (within the gap)");
  });
});

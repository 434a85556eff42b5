import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { adminUrl, agentBadge, ago, clockTime, count, liveness, parseTime, secondsUntil, taskLabel } from "../../static/dashboard/format.js";
import { filtersToSearch, isFiltered, parseFilters, taskMatcher } from "../../static/dashboard/filters.js";

const T0 = Date.parse("2024-05-01T12:00:00Z");

describe("format", () => {
  test("ago: seconds, minutes, hours, days; never; skew reads just now", () => {
    assert.equal(ago(T0, T0 + 400), "just now");
    assert.equal(ago(T0, T0 + 3_000), "3 s ago");
    assert.equal(ago(T0, T0 + 59_999), "59 s ago");
    assert.equal(ago(T0, T0 + 60_000), "1 min ago");
    assert.equal(ago(T0, T0 + 3 * 3600_000 + 5), "3 h ago");
    assert.equal(ago(T0, T0 + 50 * 3600_000), "2 d ago");
    assert.equal(ago(T0 + 5_000, T0), "just now");
    assert.equal(ago(null, T0), "never");
  });

  test("parseTime takes ISO with offsets and microseconds; junk is null", () => {
    assert.equal(parseTime("2024-05-01T12:00:00+00:00"), T0);
    assert.equal(parseTime("2024-05-01T14:00:00.123456+02:00"), T0 + 123);
    assert.equal(parseTime(""), null);
    assert.equal(parseTime(null), null);
    assert.equal(parseTime("yesterday-ish"), null);
  });

  test("clockTime, secondsUntil, count, labels, admin URLs", () => {
    assert.equal(clockTime(new Date(2024, 0, 1, 9, 5, 7).getTime()), "09:05:07");
    assert.equal(secondsUntil(T0 + 3_200, T0), 4);
    assert.equal(secondsUntil(T0 - 10, T0), 0);
    assert.equal(count(10000), "10,000");
    assert.equal(taskLabel("succeeded"), "Succeeded");
    assert.equal(taskLabel("mystery"), "mystery");
    assert.equal(adminUrl("/admin/tasks/task/0/change/", 42), "/admin/tasks/task/42/change/");
    assert.equal(adminUrl("/ops/admin/tasks/agent/0/change/", 7), "/ops/admin/tasks/agent/7/change/");
  });

  test("liveness: offline when it says so; stale after 2x the interval or never seen", () => {
    const seen = (msAgo, status = "idle") => ({ status, last_heartbeat: new Date(T0 - msAgo).toISOString() });
    assert.equal(liveness(seen(1_000), T0, 25_000), "online");
    assert.equal(liveness(seen(50_000), T0, 25_000), "online");
    assert.equal(liveness(seen(50_001), T0, 25_000), "stale");
    assert.equal(liveness(seen(1_000, "offline"), T0, 25_000), "offline");
    assert.equal(liveness({ status: "busy", last_heartbeat: null }, T0, 25_000), "stale");
    assert.equal(agentBadge({ status: "busy" }, "online"), "Busy");
    assert.equal(agentBadge({ status: "busy" }, "stale"), "Stale");
  });
});

describe("filters", () => {
  test("parse several statuses (repeated or comma-separated) and text; unknown statuses dropped", () => {
    const f = parseFilters("?status=running&status=failed,bogus&q=%20deploy%20&page=2");
    assert.deepEqual([...f.statuses].sort(), ["failed", "running"]);
    assert.equal(f.q, "deploy");
    assert.ok(isFiltered(f));
    assert.ok(!isFiltered(parseFilters("")));
  });

  test("round trip through the URL keeps other parameters and a canonical status order", () => {
    const f = { statuses: new Set(["failed", "queued"]), q: "a b" };
    const search = filtersToSearch(f, "?status=running&theme=dark");
    assert.equal(search, "?theme=dark&status=queued&status=failed&q=a+b");
    assert.deepEqual(parseFilters(search), { statuses: new Set(["queued", "failed"]), q: "a b" });
    assert.equal(filtersToSearch({ statuses: new Set(), q: "" }, "?q=x"), "");
  });

  test("matcher: status set, title substring (any case), agent name, #id", () => {
    const names = { 7: "Atlas" };
    const rows = [
      { id: 1, title: "Deploy ledger", status: "running", agent: 7 },
      { id: 2, title: "Nightly backup", status: "failed", agent: null },
      { id: 12, title: "Deploy search", status: "queued", agent: null },
    ];
    const ids = (filters) => rows.filter(taskMatcher(filters, (id) => names[id] ?? "")).map((r) => r.id);
    assert.deepEqual(ids({ statuses: new Set(), q: "" }), [1, 2, 12]);
    assert.deepEqual(ids({ statuses: new Set(["running", "queued"]), q: "" }), [1, 12]);
    assert.deepEqual(ids({ statuses: new Set(), q: "DEPLOY" }), [1, 12]);
    assert.deepEqual(ids({ statuses: new Set(["queued"]), q: "deploy" }), [12]);
    assert.deepEqual(ids({ statuses: new Set(), q: "atl" }), [1]);
    assert.deepEqual(ids({ statuses: new Set(), q: "#2" }), [2]);
    assert.deepEqual(ids({ statuses: new Set(), q: "<img src=x onerror=alert(1)>" }), []);
  });
});

import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { adminUrl, agentBadge, ago, clockTime, count, liveness, parseTime, secondsUntil, taskLabel } from "../../static/dashboard/format.js";
import {
  describeFilters, filtersToSearch, fromView, isFiltered, nextLimit, noFilters, parseFilters, sameFilters, toView,
} from "../../static/dashboard/filters.js";

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
  test("parse several statuses (repeated or comma-separated), an agent, text and a limit; bad values dropped", () => {
    const f = parseFilters("?status=running&status=failed,bogus&q=%20deploy%20&agent=7&limit=400&page=2");
    assert.deepEqual([...f.statuses].sort(), ["failed", "running"]);
    assert.deepEqual([f.q, f.agent, f.limit], ["deploy", 7, 400]);
    assert.ok(isFiltered(f));
    assert.ok(!isFiltered(parseFilters("")));
    assert.deepEqual(parseFilters("?agent=x&limit=-3"), noFilters());
    assert.equal(parseFilters("?limit=5000").limit, 1000, "at most the protocol's maximum");
    assert.equal(parseFilters(`?q=${"a".repeat(300)}`).q.length, 200);
    assert.ok(!isFiltered({ ...noFilters(), limit: 600 }), "a longer window is not a filter");
  });

  test("round trip through the URL keeps other parameters, a canonical status order, and no default limit", () => {
    const f = { statuses: new Set(["failed", "queued"]), agent: 3, q: "a b", limit: 200 };
    const search = filtersToSearch(f, "?status=running&theme=dark&limit=600");
    assert.equal(search, "?theme=dark&status=queued&status=failed&agent=3&q=a+b");
    assert.deepEqual(parseFilters(search), f);
    assert.equal(filtersToSearch(noFilters(), "?q=x&agent=2"), "");
    assert.equal(filtersToSearch({ ...noFilters(), limit: 400 }), "?limit=400");
  });

  test("the protocol view has the server's form: statuses in order, nulls for no filter, current", () => {
    assert.deepEqual(toView(noFilters()), { status: null, agent: null, q: null, limit: 200, current: true });
    const f = { statuses: new Set(["failed", "queued"]), agent: 3, q: "#42", limit: 400 };
    assert.deepEqual(toView(f), { status: ["queued", "failed"], agent: 3, q: "#42", limit: 400, current: true });
    assert.deepEqual(fromView(toView(f)), f);
    assert.deepEqual(fromView(null), noFilters());
    assert.deepEqual(fromView({ status: ["nope", "running"], agent: "3", q: 5, limit: 0 }).statuses, new Set(["running"]));
    assert.ok(sameFilters(f, { ...f, statuses: new Set(["queued", "failed"]) }));
    assert.ok(!sameFilters(f, { ...f, limit: 600 }));
  });

  test("in words, for the feed and the footer; Show more grows by 200 up to 1000", () => {
    const f = { statuses: new Set(["running", "failed"]), agent: 3, q: "deploy", limit: 200 };
    assert.equal(describeFilters(f, () => "atlas"), "Running or Failed · agent atlas · “deploy”");
    assert.equal(describeFilters({ ...noFilters(), q: "#9" }), "task #9");
    assert.equal(describeFilters(noFilters()), "");
    assert.deepEqual([nextLimit(200), nextLimit(900), nextLimit(950), nextLimit(1000)], [400, 1000, 1000, null]);
  });
});

// The page's parts for a view: sorting the rows shown, the paused badge, the feed's words for
// rows that come and go, and the older rows fetched on request.
import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { describeConnection } from "../../static/dashboard/badge.js";
import { describeTask } from "../../static/dashboard/feed.js";
import { OlderRows } from "../../static/dashboard/older.js";
import { NEWEST, ariaSort, isNewest, nextSort, sortIds } from "../../static/dashboard/sort.js";

const row = (id, extra = {}) => ({ id, title: `task ${id}`, status: "queued", progress: 0, agent: null, version: 1, updated_at: null, ...extra });

describe("sorting the rows shown", () => {
  const rows = new Map([
    [9, row(9, { title: "beta", status: "failed", progress: 10, agent: 2, updated_at: "2024-01-01T00:00:03Z" })],
    [7, row(7, { title: "Alpha", status: "running", progress: 80, agent: 1, updated_at: "2024-01-01T00:00:01Z" })],
    [5, row(5, { title: "gamma", status: "queued", progress: 80, agent: null, updated_at: "2024-01-01T00:00:02Z" })],
  ]);
  const window = [9, 7, 5];
  const names = { 1: "zeta", 2: "atlas" };
  const sorted = (key, dir) => sortIds(window, rows, { key, dir }, (id) => names[id]);

  test("newest first is the window itself, untouched", () => {
    assert.equal(sortIds(window, rows, NEWEST), window);
    assert.ok(isNewest(NEWEST));
  });

  test("by each column, both ways; ties keep the newest first; rows without an agent last", () => {
    assert.deepEqual(sorted("title", "asc"), [7, 9, 5], "case does not matter");
    assert.deepEqual(sorted("status", "asc"), [5, 7, 9]);
    assert.deepEqual(sorted("progress", "desc"), [7, 5, 9], "80 and 80: the newer (7) first");
    assert.deepEqual(sorted("progress", "asc"), [9, 7, 5]);
    assert.deepEqual(sorted("agent", "asc"), [9, 7, 5]);
    assert.deepEqual(sorted("updated", "desc"), [9, 5, 7]);
    assert.deepEqual(sorted("id", "asc"), [5, 7, 9]);
  });

  test("a click sorts by that column in its natural direction, a second one turns it round", () => {
    let sort = NEWEST;
    sort = nextSort(sort, "progress");
    assert.deepEqual(sort, { key: "progress", dir: "desc" });
    sort = nextSort(sort, "progress");
    assert.deepEqual(sort, { key: "progress", dir: "asc" });
    sort = nextSort(sort, "title");
    assert.deepEqual(sort, { key: "title", dir: "asc" });
    assert.deepEqual(nextSort(sort, "nonsense"), sort);
    assert.deepEqual([ariaSort(sort, "title"), ariaSort(sort, "id"), ariaSort(NEWEST, "id")], ["ascending", "none", "descending"]);
  });
});

describe("the badge while paused", () => {
  const status = { state: "open", attempt: 0, retryAt: null, reason: null, rtt: 12, lastMessageAt: null, message: null };

  test("a live link held still says Paused, not Live; a lost link says so whatever the pause", () => {
    const paused = describeConnection(status, 0, { paused: true });
    assert.deepEqual([paused.state, paused.text, paused.rtt], ["open", "Paused", "12 ms"]);
    assert.match(paused.announce, /^Paused/);
    assert.equal(describeConnection(status, 0).text, "Live");
    assert.equal(describeConnection({ ...status, state: "waiting", retryAt: 3000 }, 0, { paused: true }).text, "Reconnecting in 3 s");
  });
});

describe("feed lines for a window", () => {
  const name = () => "atlas";
  test("rows that enter or leave say why, and only when it is news", () => {
    const t = row(4, { title: "Build", status: "failed" });
    assert.equal(describeTask({ after: t, entered: "new" }, name).text, "New task “Build” (Failed)");
    assert.equal(describeTask({ after: t, entered: "matched" }, name).text, "“Build” is now in this view (Failed)");
    assert.equal(describeTask({ after: t, entered: null }, name), null, "moved up from below the window");
    const left = describeTask({ before: t, left: "stopped" }, name);
    assert.deepEqual([left.text, left.gone, left.tone], ["“Build” is no longer in this view", false, "left"]);
    assert.equal(describeTask({ before: t, left: "pushed" }, name), null);
    assert.equal(describeTask({ before: t, left: null }, name).text, "Task “Build” was deleted");
  });
});

describe("older rows", () => {
  /** Just enough DOM: elements that hold children, text and attributes. */
  function el() {
    return {
      hidden: true, disabled: false, textContent: "", children: [], dataset: {}, listeners: {},
      ownerDocument: { createDocumentFragment: () => ({ items: [], append(...n) { this.items.push(...n); } }) },
      append(fragment) { this.children.push(...fragment.items); },
      replaceChildren() { this.children = []; },
      addEventListener(type, fn) { this.listeners[type] = fn; },
    };
  }

  function make(answers) {
    const els = { root: el(), tbody: el(), note: el(), more: el() };
    const urls = [];
    const older = new OlderRows({
      ...els, url: "/tasks/older/", now: () => new Date(2024, 0, 1, 14, 2, 11).getTime(),
      fetchJson: async (url) => {
        urls.push(url);
        const answer = answers.shift();
        if (answer instanceof Error) throw answer;
        return answer;
      },
      createRow: () => ({ dataset: {} }),
      patchRow: (tr, data) => Object.assign(tr, { row: data }),
    });
    return { older, els, urls };
  }

  test("pages down from the bottom of the live window, marked not live, until there are no more", async () => {
    const t = make([
      { tasks: [row(90), row(80)], more: true },
      { tasks: [row(70)], more: false },
    ]);
    await t.older.load("status=failed&agent=3", 100);
    assert.deepEqual(t.urls, ["/tasks/older/?status=failed&agent=3&before=100"]);
    assert.equal(t.els.root.hidden, false);
    assert.deepEqual(t.els.tbody.children.map((tr) => [tr.row.id, tr.dataset.live]), [[90, "false"], [80, "false"]]);
    assert.match(t.els.note.textContent, /^2 tasks older than the live list, as they were at 14:02:11\. They do not update/);
    assert.equal(t.els.more.hidden, false);
    await t.els.more.listeners.click();
    assert.equal(t.urls[1], "/tasks/older/?status=failed&agent=3&before=80");
    assert.deepEqual(t.older.ids, [90, 80, 70]);
    assert.equal(t.els.more.hidden, true);
  });

  test("another view starts over; clear() forgets and hides; a failure is said", async () => {
    const t = make([{ tasks: [row(5)], more: true }, { tasks: [row(3)], more: false }, new Error("HTTP 400")]);
    await t.older.load("q=a", 10);
    await t.older.load("q=b", 8);
    assert.deepEqual(t.older.ids, [3]);
    t.older.clear();
    assert.deepEqual([t.older.ids, t.els.root.hidden, t.els.tbody.children], [[], true, []]);
    await t.older.load("q=c", 4);
    assert.equal(t.els.note.textContent, "Could not load older tasks: HTTP 400");
  });
});

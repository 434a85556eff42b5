// Long text travels as an excerpt: `truncated` lists the cut fields. The page shows the
// excerpt with "…" and says the full text is in the admin; rows without `truncated` are as before.
import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { describeTask } from "../../static/dashboard/feed.js";
import { isCut, shownText, textWithHint } from "../../static/dashboard/format.js";
import { createAgentItem, createTaskRow, patchAgentItem, patchTaskRow } from "../../static/dashboard/render.js";

/** Just enough DOM for render.js: elements, classes, attributes, dataset, text. */
class FakeElement {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.children = [];
    this.attributes = new Map();
    this.dataset = {};
    this.hidden = false;
    this.className = "";
    this.classList = { add: (c) => this.#classes(c, true), remove: (c) => this.#classes(c, false) };
    this._text = "";
  }

  #classes(name, on) {
    const set = new Set(this.className.split(" ").filter(Boolean));
    if (on) set.add(name);
    else set.delete(name);
    this.className = [...set].join(" ");
  }

  get textContent() {
    return this._text + this.children.map((c) => c.textContent).join("");
  }

  set textContent(text) {
    this.children = [];
    this._text = String(text);
  }

  get title() {
    return this.getAttribute("title") ?? "";
  }

  set title(value) {
    this.setAttribute("title", value);
  }

  set href(value) {
    this.setAttribute("href", value);
  }

  append(...nodes) {
    for (const node of nodes) this.children.push(typeof node === "string" ? Object.assign(new FakeElement("#text", this.ownerDocument), { _text: node }) : node);
  }

  replaceChildren(...nodes) {
    this.children = [];
    this._text = "";
    this.append(...nodes);
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
    if (name === "class") this.className = String(value);
  }

  removeAttribute(name) {
    this.attributes.delete(name);
  }

  querySelector(selector) {
    const match = (el) => (selector.startsWith(".") ? el.className.split(" ").includes(selector.slice(1)) : el.tagName === selector.toUpperCase());
    for (const child of this.children) {
      if (match(child)) return child;
      const found = child.querySelector(selector);
      if (found) return found;
    }
    return null;
  }
}

const doc = { createElement: (tag) => new FakeElement(tag, doc) };
const ctx = { taskUrl: "/admin/tasks/task/0/change/", agentUrl: "/admin/tasks/agent/0/change/", agentName: () => "atlas", now: 0 };
const row = (extra = {}) => ({
  id: 7, title: "Nightly backup", status: "failed", progress: 40, agent: null, error: "", version: 3,
  updated_at: "2024-01-01T00:00:00Z", ...extra,
});

describe("excerpts", () => {
  test("a cut field is shown with … and a hint that names the field and the admin", () => {
    const cut = row({ title: "Rebuild the search index for", error: "Traceback (most recent", truncated: ["error", "title"] });
    assert.equal(isCut(cut, "error"), true);
    assert.equal(shownText(cut, "title"), "Rebuild the search index for…");
    assert.equal(textWithHint(cut, "error"), "Traceback (most recent…\n(Shortened here: the full error is in the admin.)");
  });

  test("a row without `truncated` (or with something odd in it) is shown as it is", () => {
    for (const truncated of [undefined, null, "title", 3, {}]) {
      const plain = row({ truncated });
      assert.equal(isCut(plain, "title"), false, String(truncated));
      assert.equal(shownText(plain, "title"), "Nightly backup");
      assert.equal(textWithHint(plain, "title"), "Nightly backup");
    }
    assert.equal(shownText({ id: 1 }, "title"), "", "a missing field is empty, not 'undefined'");
  });

  test("the task row: link text and tooltip, the status badge's tooltip carries the error", () => {
    const tr = createTaskRow(doc);
    patchTaskRow(tr, row({ title: "Rebuild the", error: "disk full on /var", truncated: ["title", "error"] }), ctx);
    const link = tr.querySelector(".task-link");
    const badge = tr.querySelector(".badge");
    assert.equal(link.textContent, "Rebuild the…");
    assert.equal(link.getAttribute("title"), "Rebuild the…\n(Shortened here: the full title is in the admin.)");
    assert.equal(link.getAttribute("href"), "/admin/tasks/task/7/change/");
    assert.equal(link.getAttribute("data-truncated"), "title");
    assert.equal(badge.getAttribute("title"), "Failed: disk full on /var…\n(Shortened here: the full error is in the admin.)");

    patchTaskRow(tr, row({ title: "Rebuild the index", error: "", version: 4 }), ctx); // the same row, no longer cut
    assert.equal(link.textContent, "Rebuild the index");
    assert.equal(link.getAttribute("title"), "Rebuild the index");
    assert.equal(link.getAttribute("data-truncated"), null);
    assert.equal(badge.getAttribute("title"), null, "no error, no tooltip");
  });

  test("an uncut error is the badge's tooltip as it is", () => {
    const tr = createTaskRow(doc);
    patchTaskRow(tr, row({ error: "exit status 137" }), ctx);
    assert.equal(tr.querySelector(".badge").getAttribute("title"), "Failed: exit status 137");
  });

  test("an agent's running task shows the excerpt too", () => {
    const li = createAgentItem(doc);
    const agent = { id: 3, name: "atlas", status: "busy", last_heartbeat: null, version: 1 };
    patchAgentItem(li, agent, { ...ctx, liveness: "online", task: row({ status: "running", title: "Rebuild", truncated: ["title"] }) });
    const link = li.querySelector(".agent-task").querySelector("a");
    assert.equal(link.textContent, "Rebuild…");
    assert.match(link.title, /full title is in the admin/);
  });

  test("feed lines quote the excerpt", () => {
    const before = row({ status: "running", title: "Rebuild", truncated: ["title"] });
    const after = { ...before, status: "failed", version: 4 };
    assert.equal(describeTask({ before, after }, () => "").text, "“Rebuild…”: Running → Failed");
    assert.equal(describeTask({ after: row() }, () => "").text, "New task “Nightly backup” (Failed)");
  });
});

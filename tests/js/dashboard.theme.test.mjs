import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { THEME_KEY, ThemeToggle, effectiveTheme, toggledChoice } from "../../static/dashboard/theme.js";

describe("theme choice", () => {
  test("the remembered choice wins; else the system decides", () => {
    assert.equal(effectiveTheme(null, true), "dark");
    assert.equal(effectiveTheme(null, false), "light");
    assert.equal(effectiveTheme("light", true), "light");
    assert.equal(effectiveTheme("dark", false), "dark");
    assert.equal(effectiveTheme("purple", false), "light");
  });

  test("a toggle remembers the other theme, or forgets when that is the system's", () => {
    assert.equal(toggledChoice(null, false), "dark");
    assert.equal(toggledChoice("dark", false), null);
    assert.equal(toggledChoice(null, true), "light");
    assert.equal(toggledChoice("light", true), null);
  });
});

class FakeTarget {
  listeners = {};
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  fire(type, event = {}) {
    for (const fn of this.listeners[type] ?? []) fn(event);
  }
}

function setup({ systemDark = false, stored = null, broken = false } = {}) {
  const data = new Map(stored ? [[THEME_KEY, stored]] : []);
  const fail = () => {
    throw new Error("SecurityError");
  };
  const storage = broken ? { getItem: fail, setItem: fail, removeItem: fail } : {
    getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, v), removeItem: (k) => data.delete(k),
  };
  const button = Object.assign(new FakeTarget(), {
    attrs: {}, setAttribute(k, v) { this.attrs[k] = v; },
  });
  const media = Object.assign(new FakeTarget(), { matches: systemDark });
  const win = new FakeTarget();
  const root = { dataset: {} };
  const toggle = new ThemeToggle({ root, button, storage, media, window: win });
  return { toggle, root, button, media, win, data };
}

describe("ThemeToggle", () => {
  test("starts from the stored choice and says whether dark is on", () => {
    const { root, button } = setup({ stored: "dark" });
    assert.equal(root.dataset.theme, "dark");
    assert.equal(button.attrs["aria-pressed"], "true");
  });

  test("a click switches and remembers; a second click goes back to following the system", () => {
    const { root, button, data } = setup();
    assert.equal(root.dataset.theme, undefined);
    assert.equal(button.attrs["aria-pressed"], "false");
    button.fire("click");
    assert.deepEqual([root.dataset.theme, data.get(THEME_KEY), button.attrs["aria-pressed"]], ["dark", "dark", "true"]);
    button.fire("click");
    assert.deepEqual([root.dataset.theme, data.has(THEME_KEY), button.attrs["aria-pressed"]], [undefined, false, "false"]);
  });

  test("follows the system while nothing is chosen, and another tab's choice", () => {
    const { root, button, media, win, data } = setup();
    media.matches = true;
    media.fire("change");
    assert.equal(button.attrs["aria-pressed"], "true");
    data.set(THEME_KEY, "light");
    win.fire("storage", { key: THEME_KEY });
    assert.deepEqual([root.dataset.theme, button.attrs["aria-pressed"]], ["light", "false"]);
  });

  test("without storage the choice still holds for the page", () => {
    const { root, button } = setup({ broken: true });
    button.fire("click");
    assert.deepEqual([root.dataset.theme, button.attrs["aria-pressed"]], ["dark", "true"]);
  });
});

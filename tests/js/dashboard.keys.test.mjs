import "./lifecycle.setup.mjs"; // first: the server's statuses and actions, as a page has them
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { keyCommand, stepId, targetKind } from "../../static/dashboard/keys.js";

const press = (key, extra = {}) => keyCommand({ key, target: "link", inTable: true, ...extra });

describe("keyCommand", () => {
  test("j/k move from anywhere but a text field; the arrows, Home and End only in the table", () => {
    assert.equal(press("j", { inTable: false, target: "other" }), "next");
    assert.equal(press("k", { inTable: false, target: "button" }), "prev");
    assert.equal(press("ArrowDown"), "next");
    assert.equal(press("ArrowUp"), "prev");
    assert.equal(press("Home"), "first");
    assert.equal(press("End"), "last");
    for (const key of ["ArrowDown", "ArrowUp", "Home", "End"]) assert.equal(press(key, { inTable: false }), null, key);
  });

  test("typing, modifiers and an open dialog leave the keys alone", () => {
    assert.equal(press("j", { target: "text" }), null);
    assert.equal(press("ArrowDown", { target: "text" }), null);
    assert.equal(press("j", { ctrlKey: true }), null);
    assert.equal(press("k", { metaKey: true }), null);
    assert.equal(press("ArrowDown", { altKey: true }), null);
    assert.equal(press("j", { modal: true }), null);
    assert.equal(press("x"), null);
  });

  test("Enter opens from a row's checkbox; a link or a button does its own thing", () => {
    assert.equal(press("Enter", { target: "checkbox" }), "open");
    assert.equal(press("Enter", { target: "link" }), null);
    assert.equal(press("Enter", { target: "button" }), null);
    assert.equal(press("Enter", { target: "checkbox", inTable: false }), null);
  });
});

describe("stepId", () => {
  const ids = [50, 40, 30, 20, 10];

  test("moves one row and stops at the ends", () => {
    assert.equal(stepId(ids, 40, "next"), 30);
    assert.equal(stepId(ids, 40, "prev"), 50);
    assert.equal(stepId(ids, 10, "next"), 10);
    assert.equal(stepId(ids, 50, "prev"), 50);
    assert.equal(stepId(ids, 30, "first"), 50);
    assert.equal(stepId(ids, 30, "last"), 10);
  });

  test("follows the id, not the position: rows inserted above do not move the cursor", () => {
    assert.equal(stepId([70, 60, ...ids], 40, "next"), 30);
  });

  test("with no cursor, starts at the top; with its row gone, takes the row at its place", () => {
    assert.equal(stepId(ids, undefined, "next"), 50);
    assert.equal(stepId(ids, 99, "next", 2), 30);
    assert.equal(stepId(ids, 99, "next", 9), 10);
    assert.equal(stepId([], 40, "next"), undefined);
  });
});

test("targetKind tells text fields from the controls the keys may pass over", () => {
  assert.equal(targetKind({ tagName: "INPUT", type: "search" }), "text");
  assert.equal(targetKind({ tagName: "INPUT", type: "checkbox" }), "checkbox");
  assert.equal(targetKind({ tagName: "TEXTAREA" }), "text");
  assert.equal(targetKind({ tagName: "DIV", isContentEditable: true }), "text");
  assert.equal(targetKind({ tagName: "A" }), "link");
  assert.equal(targetKind({ tagName: "BUTTON" }), "button");
  assert.equal(targetKind({ tagName: "BODY" }), "other");
  assert.equal(targetKind(null), "other");
});

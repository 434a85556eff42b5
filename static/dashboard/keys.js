// The keyboard in the task table: j/k and the arrows move between rows, Home/End jump, Enter
// opens the row's task. The row with the focus is the cursor; it is kept by id (not by
// position), so live updates and scrolling never take it away (virtual.js keeps it drawn).

/**
 * What a key press asks of the table, or null to leave it to the browser.
 * @param {object} k
 * @param {string} k.key
 * @param {boolean} [k.ctrlKey] @param {boolean} [k.metaKey] @param {boolean} [k.altKey]
 * @param {"text"|"link"|"button"|"checkbox"|"other"} k.target the kind of focused element
 * @param {boolean} k.inTable the focus is in the table body
 * @param {boolean} [k.modal] a dialog is open
 */
export function keyCommand({ key, ctrlKey, metaKey, altKey, target, inTable, modal }) {
  if (ctrlKey || metaKey || altKey || modal || target === "text") return null;
  switch (key) {
    case "j": return "next";
    case "k": return "prev";
    case "ArrowDown": return inTable ? "next" : null;
    case "ArrowUp": return inTable ? "prev" : null;
    case "Home": return inTable ? "first" : null;
    case "End": return inTable ? "last" : null;
    // A link opens itself and a button presses itself; from a checkbox, open the row's task.
    case "Enter": return inTable && target === "checkbox" ? "open" : null;
    default: return null;
  }
}

/**
 * The id the cursor moves to.
 * @param {unknown[]} ids the table's ids in display order
 * @param {unknown} current the cursor's id (may be gone, or undefined)
 * @param {"next"|"prev"|"first"|"last"} command
 * @param {number} [lastIndex] where the cursor was, for when its row is gone
 * @returns {unknown} undefined when there are no ids
 */
export function stepId(ids, current, command, lastIndex = 0) {
  if (ids.length === 0) return undefined;
  const last = ids.length - 1;
  if (command === "first") return ids[0];
  if (command === "last") return ids[last];
  const i = current === undefined ? -1 : ids.indexOf(current);
  if (i < 0) return ids[Math.min(Math.max(lastIndex, 0), last)]; // start, or the row that took its place
  return ids[command === "next" ? Math.min(i + 1, last) : Math.max(i - 1, 0)];
}

/** The kind of a focused element, for keyCommand. */
export function targetKind(el) {
  if (!el || !el.tagName) return "other";
  const tag = el.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select" || el.isContentEditable) return "text";
  if (tag === "input") return el.type === "checkbox" || el.type === "radio" ? "checkbox" : "text";
  if (tag === "a") return "link";
  if (tag === "button") return "button";
  return "other";
}

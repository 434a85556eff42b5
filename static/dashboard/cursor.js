// The keyboard's cursor in the task table: the row holding the focus, kept by id (keys.js
// decides what a key means). The table keeps that row drawn (VirtualTable.pinned), so
// scrolling never drops the focus; when the row itself goes, the focus goes to the row that
// took its place.
import { keyCommand, stepId, targetKind } from "./keys.js";

export class RowCursor {
  /** Id of the cursor row, or undefined. */ id = undefined;
  /** @private where it was, for when its row goes */ #index = 0;

  /**
   * @param {object} o
   * @param {Document} o.doc
   * @param {HTMLElement} o.tbody the task rows
   * @param {import("./virtual.js").VirtualTable} o.table
   * @param {() => boolean} o.ready the table draws from the page's model (after the first sync)
   * @param {() => void} o.redraw draw the window now
   * @param {() => boolean} o.modal a dialog is open (the keys are its own then)
   * @param {(href: string) => void} o.open go to a task's page
   */
  constructor({ doc, tbody, table, ready, redraw, modal, open }) {
    Object.assign(this, { doc, tbody, table, ready, redraw, modal, open });
    tbody.addEventListener("focusin", (event) => {
      const tr = event.target.closest("tr.task");
      if (tr) this.#take(Number(tr.dataset.id));
    });
    doc.addEventListener("keydown", (event) => this.#keydown(event));
  }

  /** Does the focus sit in the table body? (Ask before a render, for keep().) */
  get focused() {
    return this.tbody.contains(this.doc.activeElement);
  }

  /** Focus the row of `id`: drawn if needed, scrolled just into view. */
  moveTo(id) {
    if (id === undefined) return;
    this.#take(id);
    const ready = this.ready();
    if (ready) {
      this.table.reveal(this.#index);
      this.redraw();
    }
    // Before the first sync the server's rows are all in the DOM: the browser scrolls.
    this.table.rows.get(id)?.querySelector(".task-link")?.focus({ preventScroll: ready });
  }

  /** After a render: follow the row's new place, or move off a row that went away. */
  keep(hadFocus) {
    if (this.id === undefined) return;
    const at = this.table.ids.indexOf(this.id);
    if (at >= 0) {
      this.#index = at;
      return;
    }
    this.table.pinned = null;
    this.id = undefined;
    if (hadFocus && !this.focused) this.moveTo(stepId(this.table.ids, undefined, "next", this.#index));
  }

  /** @private */
  #take(id) {
    this.id = id;
    this.#index = Math.max(0, this.table.ids.indexOf(id));
    this.table.pinned = id;
  }

  /** @private */
  #keydown(event) {
    const command = keyCommand({
      key: event.key, ctrlKey: event.ctrlKey, metaKey: event.metaKey, altKey: event.altKey,
      target: targetKind(event.target), inTable: this.tbody.contains(event.target), modal: this.modal(),
    });
    if (!command) return;
    event.preventDefault();
    if (command === "open") {
      const href = event.target.closest("tr.task")?.querySelector(".task-link")?.href;
      if (href) this.open(href);
      return;
    }
    const { table } = this;
    const ids = this.ready() ? table.ids : [...table.rows.keys()].filter((id) => !table.rows.get(id).hidden);
    this.moveTo(stepId(ids, this.id, command, this.#index));
  }
}

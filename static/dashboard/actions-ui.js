// The action controls of a user who may change tasks: the row checkboxes and buttons, the
// bar for the selection, the confirmation dialog and the result line. The dialog is filled
// once, when it opens, from a frozen plan (actions.js): live updates never change what the
// person is confirming. The page draws rows; this asks it to (`redraw`) and never edits one.
import { ACTIONS, PendingActions, confirmation, plan, recheck, sendAll, summary } from "./actions.js";
import { count } from "./format.js";

const SHOWN_TITLES = 5;

export class TaskActions {
  /** Ids of the selected tasks. */ selection = new Set();
  pending = new PendingActions();
  /** The rows are stale (the page is not live): nothing can be started from them. */ disabled = false;
  /** @private the plan the open dialog shows */ #plan = null;

  /**
   * @param {object} o
   * @param {HTMLElement} o.tbody the task rows
   * @param {HTMLElement} o.bar the selection bar (#bulk-bar)
   * @param {HTMLDialogElement} o.dialog
   * @param {HTMLInputElement} o.selectAll the header checkbox
   * @param {(id: unknown) => object|undefined} o.rowOf the row of a task as the page shows it
   * @param {(id: unknown) => object|undefined} [o.liveRowOf] the newest row known (the Store,
   *   which runs ahead of the page while it is paused): what a confirm checks against
   * @param {() => unknown[]} o.shown the ids the table lists now
   * @param {(id: unknown, action: string) => Promise<object>} o.post see actions.js sendAll
   * @param {() => void} o.redraw patch the rows in view
   */
  constructor({ tbody, bar, dialog, selectAll, rowOf, liveRowOf = rowOf, shown, post, redraw }) {
    Object.assign(this, { tbody, bar, dialog, selectAll, rowOf, liveRowOf, shown, post, redraw });
    const $ = (sel) => dialog.querySelector(sel);
    this.els = {
      count: bar.querySelector("#bulk-count"), result: bar.querySelector("#action-result"),
      clear: bar.querySelector("#bulk-clear"), bulk: [...bar.querySelectorAll("[data-bulk]")],
      title: $("#confirm-title"), text: $("#confirm-text"), list: $("#confirm-list"), go: $("#confirm-go"),
    };
    tbody.addEventListener("change", (event) => this.#checked(event));
    tbody.addEventListener("click", (event) => this.#rowButton(event));
    selectAll.addEventListener("change", () => this.#selectAll(selectAll.checked));
    for (const button of this.els.bulk) button.addEventListener("click", () => this.open(button.dataset.bulk, this.selection));
    this.els.clear.addEventListener("click", () => this.#selectAll(false));
    dialog.addEventListener("close", () => this.#closed());
    this.drawBar();
  }

  /** Is the confirmation open? */
  get busy() {
    return this.dialog.open;
  }

  /** Is `id` selected? (for the row's checkbox) */
  selected = (id) => this.selection.has(id);

  /**
   * The page stopped (or started) being live: the rows' and the bar's controls, and the
   * confirmation's button, are disabled while it is not. The selection is kept.
   */
  setDisabled(on) {
    if (this.disabled === on) return;
    this.disabled = on;
    this.els.go.disabled = on;
    this.drawBar();
    this.redraw();
  }

  /** Open the confirmation of `action` for `ids`, frozen as they are now. */
  open(action, ids) {
    if (!(action in ACTIONS) || this.dialog.open || this.disabled) return;
    this.#plan = plan(action, [...ids], this.rowOf);
    const words = confirmation(this.#plan);
    const { title, text, list, go } = this.els;
    title.textContent = words.title;
    text.textContent = words.text;
    const items = this.#plan.eligible.slice(0, SHOWN_TITLES).map((item) => {
      const li = list.ownerDocument.createElement("li");
      li.textContent = item.title;
      return li;
    });
    const more = this.#plan.eligible.length - items.length;
    if (more > 0) {
      const li = list.ownerDocument.createElement("li");
      li.className = "more";
      li.textContent = `…and ${count(more)} more`;
      items.push(li);
    }
    list.replaceChildren(...items);
    list.hidden = items.length === 0;
    go.textContent = words.button;
    go.hidden = !words.button;
    this.dialog.returnValue = "";
    this.dialog.showModal();
  }

  /** After a render: forget deleted tasks and the actions whose result has arrived. */
  settle() {
    for (const id of this.selection) if (!this.rowOf(id)) this.selection.delete(id);
    this.pending.settle(this.rowOf);
    this.drawBar();
  }

  /** The bar's count and buttons, and the header checkbox. */
  drawBar() {
    const n = this.selection.size;
    const text = n === 0 ? "No task selected" : `${count(n)} selected`;
    if (this.els.count.textContent !== text) this.els.count.textContent = text;
    for (const button of this.els.bulk) button.disabled = n === 0 || this.disabled;
    this.els.clear.disabled = n === 0;
    const shown = this.shown();
    const all = shown.length > 0 && n >= shown.length && shown.every((id) => this.selection.has(id));
    this.selectAll.checked = all;
    this.selectAll.indeterminate = n > 0 && !all;
    this.selectAll.disabled = this.disabled;
  }

  /** @private */
  #checked(event) {
    const box = event.target.closest?.(".row-select");
    const tr = box?.closest("tr.task");
    if (!tr) return;
    const id = Number(tr.dataset.id);
    if (box.checked) this.selection.add(id);
    else this.selection.delete(id);
    this.drawBar();
  }

  /** @private */
  #rowButton(event) {
    const button = event.target.closest?.(".row-action");
    const tr = button?.closest("tr.task");
    if (tr && button.dataset.action) this.open(button.dataset.action, [Number(tr.dataset.id)]);
  }

  /** @private */
  #selectAll(on) {
    if (on) for (const id of this.shown()) this.selection.add(id);
    else this.selection.clear();
    this.drawBar();
    this.redraw();
  }

  /** @private The dialog closed: with "confirm", send what still holds. */
  #closed() {
    const planned = this.#plan;
    this.#plan = null;
    if (!planned || this.dialog.returnValue !== "confirm" || planned.eligible.length === 0 || this.disabled) return;
    this.#run(planned);
  }

  /** @private */
  async #run(planned) {
    const { action } = planned;
    const { send, changed } = recheck(planned, this.liveRowOf);
    for (const item of send) this.pending.start(item.id, action, item.version);
    this.#say(send.length ? `${ACTIONS[action].doing} ${count(send.length)}…` : "");
    this.redraw();
    const results = await sendAll(action, send, this.post, {
      onResult: (result) => {
        if (result.ok) {
          this.pending.answered(result.id, result.version);
          this.selection.delete(result.id);
        } else {
          this.pending.drop(result.id);
        }
      },
    });
    this.pending.settle(this.rowOf); // the stream may have been first
    this.#say(summary(action, { results, changed }));
    this.drawBar();
    this.redraw();
  }

  /** @private */
  #say(text) {
    this.els.result.textContent = text;
    this.els.result.title = text;
  }
}

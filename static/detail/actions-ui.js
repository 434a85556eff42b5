// The task page's action bar and its confirmation dialog (for users who may change tasks).
// The dialog is filled once, when it opens, from a frozen plan (actions.js); at confirm the
// task's status is checked again and the request is sent only if it is still the one shown.
// The page never changes the task itself: the change comes back through the stream.
import { ACTIONS, errorText, offered, outcome, plan, recheck, words } from "./actions.js";

export class TaskPageActions {
  /** @private the plan the open dialog shows */ #plan = null;
  /** @private the version the last answered action made, until the page shows it */ #pending = null;

  /**
   * @param {object} o
   * @param {HTMLElement} o.bar the page's #task-actions
   * @param {HTMLDialogElement} o.dialog
   * @param {() => object|null} o.rowOf the task as the page knows it now (null: deleted)
   * @param {() => boolean} o.live is the page live (its stream open)?
   * @param {(action: string, reason: string) => Promise<{ok: boolean, status: number, body: object|null}>} o.post
   */
  constructor({ bar, dialog, rowOf, live, post }) {
    Object.assign(this, { bar, dialog, rowOf, live, post });
    const $ = (sel) => dialog.querySelector(sel);
    this.els = {
      buttons: [...bar.querySelectorAll("button[data-action]")], result: bar.querySelector("#action-result"),
      title: $("#confirm-title"), text: $("#confirm-text"), list: $("#confirm-list"), go: $("#confirm-go"),
      reasonField: $("#reason-field"), reason: $("#fail-reason"),
    };
    for (const button of this.els.buttons) button.addEventListener("click", () => this.open(button.dataset.action));
    dialog.addEventListener("close", () => this.#closed());
    this.draw();
  }

  /** Show the actions the task's status allows; disabled while not live or one is on its way. */
  draw() {
    const row = this.rowOf();
    if (row && this.#pending !== null && row.version >= this.#pending) this.#pending = null;
    const usable = this.live() && this.#pending === null && !this.dialog.open;
    for (const button of this.els.buttons) {
      const shown = Boolean(row) && offered(button.dataset.action, row.status);
      if (button.hidden === shown) button.hidden = !shown;
      button.disabled = !usable;
    }
    this.bar.dataset.status = row ? row.status : "deleted";
  }

  /** Open the confirmation of `action`, frozen as the task is now. */
  open(action) {
    const row = this.rowOf();
    if (!(action in ACTIONS) || !row || this.dialog.open) return;
    this.#plan = plan(action, row);
    const said = words(this.#plan);
    const { title, text, list, go, reasonField, reason } = this.els;
    title.textContent = said.title;
    text.textContent = said.text;
    const items = this.#plan.eligible.map((item) => {
      const li = list.ownerDocument.createElement("li");
      li.textContent = item.title;
      return li;
    });
    list.replaceChildren(...items);
    list.hidden = items.length === 0;
    reasonField.hidden = !said.reason;
    reason.required = said.reason;
    reason.value = "";
    go.textContent = said.button;
    go.hidden = !said.button;
    this.dialog.returnValue = "";
    this.dialog.showModal();
    (said.reason ? reason : this.dialog.querySelector("#confirm-back")).focus();
  }

  /** @private The dialog closed: with "confirm", send what still holds. */
  #closed() {
    const planned = this.#plan;
    this.#plan = null;
    const reason = this.els.reason.value.trim();
    if (!planned || this.dialog.returnValue !== "confirm" || planned.eligible.length === 0) return this.draw();
    this.#run(planned, reason);
  }

  /** @private */
  async #run(planned, reason) {
    const { action } = planned;
    const { send, changed } = recheck(planned, () => this.rowOf() ?? undefined);
    if (!send.length) {
      this.#say(outcome(action, { changed }));
      return this.draw();
    }
    this.#pending = Number.MAX_SAFE_INTEGER; // until the answer says which version to wait for
    this.#say(`${ACTIONS[action].doing}`);
    this.draw();
    let result;
    try {
      const answer = await this.post(action, reason);
      result = answer.ok ? { ok: true, version: answer.body?.version } : { ok: false, error: errorText(answer) };
    } catch (error) {
      result = { ok: false, error: `not sent (${error?.message ?? error})` };
    }
    this.#pending = result.ok && typeof result.version === "number" ? result.version : null;
    this.#say(outcome(action, { result }));
    this.draw();
  }

  /** @private */
  #say(text) {
    this.els.result.textContent = text;
    this.els.result.title = text;
  }
}

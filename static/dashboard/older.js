// Tasks older than the live window, fetched on request (`GET /tasks/older/?before=<id>&...`,
// tasks/views.py `older_tasks`) and shown apart, below the live table, marked "Not live":
// they are a copy as of the moment they were fetched and never update.
import { clockTime, count } from "./format.js";

export class OlderRows {
  /** Ids shown, in order. */ ids = [];

  /** @private */ #opts;
  /** @private */ #next = null; // the `before` of the next page, or null when there is none
  /** @private */ #query = ""; // the filters these rows are of
  /** @private */ #loading = null;

  /**
   * @param {object} o
   * @param {HTMLElement} o.root the section (hidden while empty)
   * @param {HTMLElement} o.tbody
   * @param {HTMLElement} o.note what these rows are, and as of when
   * @param {HTMLButtonElement} o.more loads the next page
   * @param {string} o.url the JSON view
   * @param {(url: string) => Promise<object>} o.fetchJson
   * @param {() => HTMLTableRowElement} o.createRow
   * @param {(tr: HTMLTableRowElement, row: object) => void} o.patchRow
   * @param {() => number} [o.now]
   */
  constructor(o) {
    this.#opts = { now: Date.now, ...o };
    o.more.addEventListener("click", () => this.#page());
  }

  /** Is a page on its way? */
  get loading() {
    return this.#loading !== null;
  }

  /**
   * Show the tasks of `query` (a view's query string: status, agent, q) below id `before`
   * (the bottom of the live window). Returns a promise for when the page is in.
   */
  load(query, before) {
    if (query !== this.#query) this.clear();
    this.#query = query;
    this.#next = before;
    return this.#page();
  }

  /** Forget the rows (the view changed: they are another view's). */
  clear() {
    this.ids = [];
    this.#next = null;
    this.#query = "";
    this.#loading = null;
    this.#opts.tbody.replaceChildren();
    this.#opts.root.hidden = true;
  }

  /** @private */
  #page() {
    if (this.#loading || this.#next === null) return this.#loading ?? Promise.resolve();
    const { url, fetchJson, more } = this.#opts;
    const query = this.#query;
    const params = new URLSearchParams(query);
    params.set("before", String(this.#next));
    more.disabled = true;
    const loading = fetchJson(`${url}?${params}`)
      .then((answer) => {
        if (this.#loading !== loading || this.#query !== query) return; // cleared meanwhile
        this.#show(answer);
      })
      .catch((error) => {
        if (this.#loading === loading) this.#say(`Could not load older tasks: ${error.message ?? error}`);
      })
      .finally(() => {
        if (this.#loading === loading) this.#loading = null;
        more.disabled = false;
      });
    this.#loading = loading;
    return loading;
  }

  /** @private */
  #show(answer) {
    const { tbody, createRow, patchRow, root, more } = this.#opts;
    const doc = tbody.ownerDocument;
    const fragment = doc.createDocumentFragment();
    for (const row of answer.tasks ?? []) {
      const tr = createRow();
      patchRow(tr, row);
      tr.dataset.live = "false";
      fragment.append(tr);
      this.ids.push(row.id);
    }
    tbody.append(fragment);
    const rows = answer.tasks ?? [];
    this.#next = answer.more && rows.length ? rows.at(-1).id : null;
    more.hidden = this.#next === null;
    root.hidden = false;
    const n = this.ids.length;
    this.#say(`${count(n)} ${n === 1 ? "task" : "tasks"} older than the live list, as they were at ${clockTime(this.#opts.now())}. `
      + "They do not update; the live list above does.");
  }

  /** @private */
  #say(text) {
    this.#opts.note.textContent = text;
    this.#opts.root.hidden = false;
  }
}

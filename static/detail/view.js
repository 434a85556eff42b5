// The DOM side of a detail page's timeline (the rules are in timeline.js). Items and fields
// arrive as HTML the server rendered with the page's own templates (Django escapes every
// value), so a live item is the same element a reload would render.
//
// Every change is one element with `data-seq`, newest first in document order: a plain item
// is `<li data-seq>`; a folded run of progress reports is `<li class="fold">` (named by
// `data-last-seq`, `data-first-seq`, `data-count`) whose collapsed `<details>` lists each
// report as its own `<li data-seq>`.

const parse = (doc, html) => {
  const template = doc.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
};

/** A TimelineView over the page's `#timeline` list, `#older` button, `#fields` and banner. */
export class DomTimelineView {
  constructor({ list, older, fields, deleted, flashMs = 1600 }) {
    this.els = { list, older, fields, deleted };
    this.flashMs = flashMs;
  }

  #elements(items, fresh) {
    const doc = this.els.list.ownerDocument;
    const fragment = doc.createDocumentFragment();
    for (const item of items) {
      const li = parse(doc, item.html);
      if (!li) continue;
      if (fresh) this.#flash(li);
      fragment.append(li);
    }
    this.els.list.querySelector(".timeline-empty")?.remove();
    return fragment;
  }

  prepend(items) {
    this.els.list.prepend(this.#elements(items, true));
  }

  append(items) {
    this.els.list.append(this.#elements(items, false));
  }

  replace(items) {
    this.els.list.replaceChildren(this.#elements(items, false));
  }

  /** The page's item whose newest change is `seq` (a change, or a folded line). */
  #item(seq) {
    const n = Number(seq);
    return [...this.els.list.children].find((li) => Number(li.dataset.seq ?? li.dataset.lastSeq) === n) ?? null;
  }

  remove(seq) {
    this.#item(seq)?.remove();
  }

  /**
   * The folded line whose newest change is `seq` goes on: `item` is that line as the server
   * renders it now, with only its new changes. The line keeps its element (and whether it is
   * open, and the focus); it takes the new words, times and numbers, and the new changes go
   * on top of its own. False when the page has no such line.
   */
  extend(seq, item) {
    const line = this.#item(seq);
    const next = parse(this.els.list.ownerDocument, item.html);
    const parts = (li) => ({ summary: li?.querySelector("summary"), meta: li?.querySelector(".change-meta"), list: li?.querySelector(".fold-list") });
    const have = parts(line);
    const want = parts(next);
    if (!have.summary || !have.meta || !have.list || !want.summary || !want.meta || !want.list) return false;
    for (const { name } of [...line.attributes]) if (!next.hasAttribute(name)) line.removeAttribute(name);
    for (const { name, value } of next.attributes) line.setAttribute(name, value);
    have.summary.replaceChildren(...want.summary.childNodes);
    have.meta.replaceChildren(...want.meta.childNodes);
    have.list.prepend(...want.list.children);
    this.#flash(line);
    return true;
  }

  #flash(li) {
    if (matchMedia("(prefers-reduced-motion: reduce)").matches) return;
    li.classList.add("is-new");
    setTimeout(() => li.classList.remove("is-new"), this.flashMs);
  }

  /** When the newest item is progress-only: the oldest change of its run (one change, or a folded line). */
  topRun() {
    const top = this.els.list.firstElementChild;
    if (!top?.dataset.fold) return null;
    return Number(top.dataset.firstSeq ?? top.dataset.seq);
  }

  /** Drop the oldest items while the page holds more than `max` changes; never the newest item. */
  trim(max) {
    const { list } = this.els;
    const changes = (li) => (li.matches("[data-seq]") ? 1 : li.querySelectorAll("[data-seq]").length);
    let held = list.querySelectorAll("[data-seq]").length;
    let dropped = false;
    while (held > max && list.children.length > 1) {
      held -= changes(list.lastElementChild);
      list.lastElementChild.remove();
      dropped = true;
    }
    return dropped;
  }

  /** The oldest change shown: the last `data-seq` element, a folded line's included. */
  oldestSeq() {
    const last = this.els.list.lastElementChild;
    const seq = last?.matches("[data-seq]") ? last : [...(last?.querySelectorAll("[data-seq]") ?? [])].at(-1);
    return seq ? Number(seq.dataset.seq) : null;
  }

  setOlder(on) {
    this.els.older.hidden = !on;
  }

  setFields(html) {
    this.els.fields.innerHTML = html;
  }

  setDeleted(on) {
    if (this.els.deleted) this.els.deleted.hidden = !on;
  }

  failed(error) {
    console.warn("timeline: fetch failed, retrying", error);
  }
}

// The DOM side of a detail page's timeline (the rules are in timeline.js). Items and fields
// arrive as HTML the server rendered with the page's own templates (Django escapes every
// value), so a live item is the same element a reload would render.

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
      if (fresh && !matchMedia("(prefers-reduced-motion: reduce)").matches) {
        li.classList.add("is-new");
        setTimeout(() => li.classList.remove("is-new"), this.flashMs);
      }
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

  remove(seq) {
    this.els.list.querySelector(`li[data-seq="${Number(seq)}"]`)?.remove();
  }

  topRun() {
    const top = this.els.list.querySelector("li[data-seq]");
    return top?.dataset.fold ? Number(top.dataset.firstSeq) : null;
  }

  trim(max) {
    const { list } = this.els;
    let dropped = false;
    while (list.children.length > max) {
      list.lastElementChild.remove();
      dropped = true;
    }
    return dropped;
  }

  oldestSeq() {
    const last = [...this.els.list.querySelectorAll("li[data-seq]")].at(-1);
    return last ? Number(last.dataset.firstSeq ?? last.dataset.seq) : null;
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

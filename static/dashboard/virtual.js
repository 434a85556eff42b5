// A windowed table body: whatever the number of ids, only the rows in view plus a margin
// are in the DOM. Rows are keyed by id and kept while they stay in the window, so an update
// patches a row in place (focus and selection survive) and nothing is rebuilt. One more row
// may be pinned (the keyboard's cursor): it stays in the DOM, in its place between spacers,
// however far the window scrolls from it, so the focus it holds is never dropped.

/**
 * Indexes [start, end) of the rows to draw.
 * @param {object} g
 * @param {number} g.scrollTop scroller's scrollTop
 * @param {number} g.viewport scroller's clientHeight
 * @param {number} g.rowHeight px; every row has this height
 * @param {number} g.offset px above the first row inside the scroller (a sticky header)
 * @param {number} g.count number of ids
 * @param {number} g.margin rows drawn beyond each edge
 */
export function windowRange({ scrollTop, viewport, rowHeight, offset, count, margin }) {
  if (count <= 0 || !(rowHeight > 0)) return [0, 0];
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const last = Math.ceil(Math.max(0, scrollTop + viewport - offset) / rowHeight);
  const clamp = (n) => Math.min(count, Math.max(0, n));
  return [clamp(first - margin), clamp(Math.max(last, first + 1) + margin)];
}

export class VirtualTable {
  /** Ids in display order. */ ids = [];
  /** Id of a row kept drawn outside the window (the focused row), or null. */ pinned = null;
  /** Rows that came in above the view while it was held still (reset back at the top). */ newAbove = 0;
  /** @type {Map<unknown, HTMLTableRowElement>} rows in the DOM, by id */ rows = new Map();

  /**
   * @param {object} o
   * @param {HTMLElement} o.scroller the element that scrolls (overflow: auto)
   * @param {HTMLTableSectionElement} o.tbody
   * @param {number} o.columns for the spacer and empty rows
   * @param {() => HTMLTableRowElement} o.createRow
   * @param {(tr: HTMLTableRowElement, id: unknown, flash: boolean) => void} o.patchRow
   * @param {() => string} o.emptyText shown when there are no ids
   * @param {(id: string) => unknown} [o.parseId] id of a server-rendered row from data-id
   * @param {number} [o.margin]
   */
  constructor({ scroller, tbody, columns, createRow, patchRow, emptyText, parseId = Number, margin = 10 }) {
    Object.assign(this, { scroller, tbody, createRow, patchRow, emptyText, margin });
    const doc = tbody.ownerDocument;
    this.table = tbody.closest("table");
    for (const tr of tbody.querySelectorAll("tr.task[data-id]")) {
      const id = parseId(tr.dataset.id);
      this.rows.set(id, tr);
      this.ids.push(id);
    }
    for (const tr of tbody.querySelectorAll("tr:not(.task)")) tr.remove();
    this.top = spacer(doc, columns);
    this.middle = spacer(doc, columns); // between the window and a pinned row outside it
    this.bottom = spacer(doc, columns);
    this.empty = doc.createElement("tr");
    this.empty.className = "empty";
    const cell = doc.createElement("td");
    cell.colSpan = columns;
    this.empty.append(cell);
    tbody.prepend(this.top);
    tbody.append(this.middle, this.bottom);
    this.scrollTop = scroller.scrollTop;
    this.restore = null; // a scrollTop to set after the next draw (keeps the rows in view still)
    this.measure();
  }

  /** Read the geometry (on start and on resize; a draw never reads layout). */
  measure() {
    const css = getComputedStyle(this.scroller).getPropertyValue("--row-h");
    this.rowHeight = parseFloat(css) || 40;
    // Where the body starts inside the table: a sticky header's height, or 0 when the
    // header is visually hidden (the narrow layout).
    this.offset = this.table ? this.tbody.getBoundingClientRect().top - this.table.getBoundingClientRect().top : 0;
    this.viewport = this.scroller.clientHeight;
    this.scrollTop = this.scroller.scrollTop;
  }

  /** Call from the scroll listener. */
  scrolled() {
    this.scrollTop = this.scroller.scrollTop;
    if (this.scrollTop < this.rowHeight) this.newAbove = 0;
  }

  /**
   * Replace the ids. With `anchor`, the rows in view stay where they are on screen even when
   * rows are inserted or removed above them: scrolled down, always; at the top, only with
   * `hold` (the person is busy with the rows: a focus, a selection, a dialog), else new rows
   * come in at the top. The anchor is the pinned row when it is in view, else the top row.
   */
  setIds(ids, { anchor = true, hold = false } = {}) {
    const rh = this.rowHeight;
    let index = Math.floor(this.scrollTop / rh);
    let anchorId = anchor && (this.scrollTop > 0 || hold) ? this.ids[index] : undefined;
    if (anchorId !== undefined && this.pinned !== null) {
      const at = this.ids.indexOf(this.pinned);
      if (at >= 0 && this.#inView(at)) [index, anchorId] = [at, this.pinned];
    }
    this.ids = ids;
    if (anchorId === undefined) return;
    const now = ids.indexOf(anchorId);
    if (now >= 0 && now !== index) {
      this.scrollTop = Math.max(0, this.scrollTop + (now - index) * rh);
      this.restore = this.scrollTop;
      this.newAbove = Math.max(0, this.newAbove + now - index);
    }
  }

  /** Scroll just enough for the row at `index` to be in view (whole, below the header). */
  reveal(index) {
    const rh = this.rowHeight;
    const visible = Math.max(rh, this.viewport - this.offset);
    let top = this.scrollTop;
    if (index * rh < top) top = index * rh;
    else if ((index + 1) * rh > top + visible) top = (index + 1) * rh - visible;
    if (top !== this.scrollTop) {
      this.scrollTop = top;
      this.restore = top;
    }
  }

  /** @private Is the row at `index` wholly in view? */
  #inView(index) {
    const rh = this.rowHeight;
    return index * rh >= this.scrollTop && (index + 1) * rh <= this.scrollTop + Math.max(rh, this.viewport - this.offset);
  }

  /** Scroll to the top (a new filter starts from the first match). */
  toTop() {
    this.scrollTop = 0;
    this.restore = 0;
    this.newAbove = 0;
  }

  /** Draw the window; rows whose id is in `flash` get the change highlight. */
  render(flash = EMPTY) {
    const count = this.ids.length;
    const [start, end] = windowRange({
      scrollTop: this.scrollTop, viewport: this.viewport, rowHeight: this.rowHeight,
      offset: this.offset, count, margin: this.margin,
    });
    // The pinned row outside the window splits a spacer in two: above it or below it.
    const pin = this.pinned === null ? -1 : this.ids.indexOf(this.pinned);
    const above = pin >= 0 && pin < start;
    const below = pin >= end;
    const indexes = [];
    if (above) indexes.push(pin);
    for (let i = start; i < end; i += 1) indexes.push(i);
    if (below) indexes.push(pin);
    const keep = new Set(indexes.map((i) => this.ids[i]));
    const focused = this.tbody.ownerDocument.activeElement;
    const hadFocus = focused && focused !== this.tbody && this.tbody.contains(focused) ? focused : null;
    for (const [id, tr] of this.rows) {
      if (!keep.has(id)) {
        tr.remove();
        this.rows.delete(id);
      }
    }
    // Place each node at the cursor; a node already in place is never moved (a moved node
    // would lose the focus), and rows keep their relative order, so the focused one stays.
    let cursor = this.tbody.firstChild;
    const place = (node) => {
      if (node === cursor) cursor = cursor.nextSibling;
      else this.tbody.insertBefore(node, cursor);
    };
    place(this.top);
    for (const i of indexes) {
      if (below && i === pin) place(this.middle);
      const id = this.ids[i];
      let tr = this.rows.get(id);
      if (!tr) this.rows.set(id, (tr = this.createRow()));
      this.patchRow(tr, id, flash.has(id));
      const rowIndex = String(i + 2); // 1 is the header row
      if (tr.getAttribute("aria-rowindex") !== rowIndex) tr.setAttribute("aria-rowindex", rowIndex);
      place(tr);
      if (above && i === pin) place(this.middle);
    }
    if (!above && !below) place(this.middle);
    const rh = this.rowHeight;
    setHeight(this.top, (above ? pin : start) * rh);
    setHeight(this.middle, above ? (start - pin - 1) * rh : below ? (pin - end) * rh : 0);
    setHeight(this.bottom, (count - (below ? pin + 1 : end)) * rh);
    if (hadFocus && hadFocus.isConnected && this.tbody.ownerDocument.activeElement !== hadFocus) {
      hadFocus.focus({ preventScroll: true });
    }
    this.table?.setAttribute("aria-rowcount", String(count + 1));
    this.#showEmpty(count === 0);
    if (this.restore !== null) {
      this.scroller.scrollTop = this.restore;
      this.scrollTop = this.scroller.scrollTop;
      this.restore = null;
    }
  }

  /** @private */
  #showEmpty(on) {
    if (on) {
      const text = this.emptyText();
      if (this.empty.firstChild.textContent !== text) this.empty.firstChild.textContent = text;
      if (!this.empty.isConnected) this.tbody.insertBefore(this.empty, this.bottom);
    } else if (this.empty.isConnected) {
      this.empty.remove();
    }
  }
}

const EMPTY = new Set();

function spacer(doc, columns) {
  const tr = doc.createElement("tr");
  tr.className = "spacer";
  tr.setAttribute("aria-hidden", "true");
  const td = doc.createElement("td");
  td.colSpan = columns;
  tr.append(td);
  return tr;
}

function setHeight(tr, px) {
  const value = `${px}px`;
  if (tr.style.height !== value) tr.style.height = value;
  tr.hidden = px === 0;
}

// A windowed table body: whatever the number of ids, only the rows in view plus a margin
// are in the DOM. Rows are keyed by id and kept while they stay in the window, so an update
// patches a row in place (focus and selection survive) and nothing is rebuilt.

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
    this.bottom = spacer(doc, columns);
    this.empty = doc.createElement("tr");
    this.empty.className = "empty";
    const cell = doc.createElement("td");
    cell.colSpan = columns;
    this.empty.append(cell);
    tbody.prepend(this.top);
    tbody.append(this.bottom);
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
  }

  /**
   * Replace the ids. With `anchor`, the row at the top of the view stays where it is on
   * screen even when rows are inserted or removed above it.
   */
  setIds(ids, { anchor = true } = {}) {
    const rh = this.rowHeight;
    const index = Math.floor(this.scrollTop / rh);
    const anchorId = anchor && this.scrollTop > 0 ? this.ids[index] : undefined;
    this.ids = ids;
    if (anchorId === undefined) return;
    const now = ids.indexOf(anchorId);
    if (now >= 0 && now !== index) {
      this.scrollTop = Math.max(0, this.scrollTop + (now - index) * rh);
      this.restore = this.scrollTop;
    }
  }

  /** Scroll to the top (a new filter starts from the first match). */
  toTop() {
    this.scrollTop = 0;
    this.restore = 0;
  }

  /** Draw the window; rows whose id is in `flash` get the change highlight. */
  render(flash = EMPTY) {
    const count = this.ids.length;
    const [start, end] = windowRange({
      scrollTop: this.scrollTop, viewport: this.viewport, rowHeight: this.rowHeight,
      offset: this.offset, count, margin: this.margin,
    });
    const wanted = this.ids.slice(start, end);
    const keep = new Set(wanted);
    for (const [id, tr] of this.rows) {
      if (!keep.has(id)) {
        tr.remove();
        this.rows.delete(id);
      }
    }
    let cursor = this.top.nextSibling;
    wanted.forEach((id, i) => {
      let tr = this.rows.get(id);
      if (!tr) this.rows.set(id, (tr = this.createRow()));
      this.patchRow(tr, id, flash.has(id));
      const rowIndex = String(start + i + 2); // 1 is the header row
      if (tr.getAttribute("aria-rowindex") !== rowIndex) tr.setAttribute("aria-rowindex", rowIndex);
      if (tr === cursor) cursor = cursor.nextSibling;
      else this.tbody.insertBefore(tr, cursor);
    });
    setHeight(this.top, start * this.rowHeight);
    setHeight(this.bottom, (count - end) * this.rowHeight);
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

// Sorting the rows shown by a column. The window itself is the newest tasks (id descending,
// docs/protocol.md "Views"); a sort reorders the rows of that window, it never asks the
// server for other rows. Pure functions: main.js applies them, tests/js checks them.
import { parseTime } from "./format.js";

const STATUS_ORDER = ["queued", "running", "succeeded", "failed", "cancelled"];

/** The sortable columns: key -> how to read a row, and the first direction a click gives. */
export const SORTS = Object.freeze({
  id: { label: "ID", first: "desc", value: (row) => row.id },
  title: { label: "Task", first: "asc", value: (row) => String(row.title ?? "").toLocaleLowerCase() },
  status: { label: "Status", first: "asc", value: (row) => STATUS_ORDER.indexOf(row.status) },
  progress: { label: "Progress", first: "desc", value: (row) => Number(row.progress) || 0 },
  agent: { label: "Agent", first: "asc", value: (row, agentName) => (row.agent === null || row.agent === undefined ? "\uffff" : agentName(row.agent).toLocaleLowerCase()) },
  updated: { label: "Updated", first: "desc", value: (row) => parseTime(row.updated_at) ?? 0 },
});

/** The window's own order. */
export const NEWEST = Object.freeze({ key: "id", dir: "desc" });

/** Is `sort` the window's own order (nothing to do)? */
export const isNewest = (sort) => sort.key === NEWEST.key && sort.dir === NEWEST.dir;

/** The sort after a click on the header of `key`: that column first, then the other direction. */
export function nextSort(sort, key) {
  if (!(key in SORTS)) return sort;
  if (sort.key !== key) return { key, dir: SORTS[key].first };
  return { key, dir: sort.dir === "asc" ? "desc" : "asc" };
}

/**
 * `ids` (the window, newest first) in the order of `sort`; ties keep the newest first. The
 * same array when `sort` is the window's own order.
 * @param {unknown[]} ids
 * @param {Map<unknown, object>} rows
 * @param {{key: string, dir: "asc"|"desc"}} sort
 * @param {(id: unknown) => string} agentName
 */
export function sortIds(ids, rows, sort, agentName = (id) => `#${id}`) {
  if (isNewest(sort) || !(sort.key in SORTS)) return ids;
  const read = SORTS[sort.key].value;
  const sign = sort.dir === "asc" ? 1 : -1;
  const keyed = ids.map((id, index) => ({ id, index, value: read(rows.get(id) ?? { id }, agentName) }));
  keyed.sort((a, b) => (a.value < b.value ? -sign : a.value > b.value ? sign : a.index - b.index));
  return keyed.map((entry) => entry.id);
}

/** aria-sort of a column's header under `sort`. */
export const ariaSort = (sort, key) => (sort.key !== key ? "none" : sort.dir === "asc" ? "ascending" : "descending");

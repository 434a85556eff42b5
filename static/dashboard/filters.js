// Task filters (several statuses and a text search), kept in the URL query so a view can be
// bookmarked: `?status=running&status=failed&q=deploy`.
import { TASK_STATUS } from "./format.js";

/**
 * @typedef {object} Filters
 * @property {Set<string>} statuses empty means every status
 * @property {string} q text search; empty means none
 */

/** Filters from a query string (`location.search`). Unknown statuses are dropped. */
export function parseFilters(search) {
  const params = new URLSearchParams(search);
  const statuses = new Set(
    params.getAll("status").flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v in TASK_STATUS),
  );
  return { statuses, q: (params.get("q") ?? "").trim() };
}

/** The query string for `filters`, keeping other parameters of `search`; "" when none. */
export function filtersToSearch(filters, search = "") {
  const params = new URLSearchParams(search);
  params.delete("status");
  params.delete("q");
  for (const status of Object.keys(TASK_STATUS)) if (filters.statuses.has(status)) params.append("status", status);
  if (filters.q) params.set("q", filters.q);
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Does any filter narrow the list? */
export const isFiltered = (filters) => filters.statuses.size > 0 || filters.q !== "";

// Lower-cased titles, computed once per row object (rows are replaced, never mutated).
const lowered = new WeakMap();
function lowerTitle(row) {
  let text = lowered.get(row);
  if (text === undefined) {
    text = String(row.title ?? "").toLowerCase();
    lowered.set(row, text);
  }
  return text;
}

/**
 * A predicate for task rows. The text matches the title, the agent's name, or the id
 * (`42` or `#42`), case-insensitively.
 * @param {Filters} filters
 * @param {(agentId: unknown) => string} [agentName]
 */
export function taskMatcher(filters, agentName = () => "") {
  const { statuses } = filters;
  const needle = filters.q.toLowerCase();
  const idNeedle = needle.replace(/^#/, "");
  return (row) => {
    if (statuses.size > 0 && !statuses.has(row.status)) return false;
    if (!needle) return true;
    return lowerTitle(row).includes(needle)
      || String(row.id) === idNeedle
      || (row.agent !== null && row.agent !== undefined && agentName(row.agent).toLowerCase().includes(needle));
  };
}

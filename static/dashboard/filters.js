// The page's filters (several statuses, an agent, a text search, how many rows), kept in the
// URL so a view can be bookmarked (`?status=running&status=failed&agent=3&q=deploy`), and
// the protocol view they ask the server for (docs/protocol.md, "Views"). The server answers
// searches and filters over the whole table; the page never filters rows itself.
import { VIEW } from "../realtime/constants.js";
import { TASK_STATUS } from "./format.js";

/** A search is at most this long (a title is at most 200 characters). */
export const MAX_QUERY = 200;

/**
 * @typedef {object} Filters
 * @property {Set<string>} statuses empty means every status
 * @property {number|null} agent an agent id, or null for every agent
 * @property {string} q a part of the title, or `#<id>`; empty means none
 * @property {number} limit how many of the newest matching tasks the window holds
 */

/** No filter, the default limit. */
export const noFilters = () => ({ statuses: new Set(), agent: null, q: "", limit: VIEW.DEFAULT_LIMIT });

const positive = (text) => (/^\d{1,18}$/.test(text ?? "") && Number(text) > 0 ? Number(text) : null);

/** Filters from a query string (`location.search`). Unknown statuses and bad numbers are dropped. */
export function parseFilters(search) {
  const params = new URLSearchParams(search);
  const statuses = new Set(
    params.getAll("status").flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v in TASK_STATUS),
  );
  const limit = positive(params.get("limit"));
  return {
    statuses,
    agent: positive(params.get("agent")),
    q: (params.get("q") ?? "").trim().slice(0, MAX_QUERY),
    limit: limit === null ? VIEW.DEFAULT_LIMIT : Math.min(VIEW.MAX_LIMIT, limit),
  };
}

/** The query string for `filters`, keeping other parameters of `search`; "" when none. */
export function filtersToSearch(filters, search = "") {
  const params = new URLSearchParams(search);
  for (const name of ["status", "agent", "q", "limit"]) params.delete(name);
  for (const status of Object.keys(TASK_STATUS)) if (filters.statuses.has(status)) params.append("status", status);
  if (filters.agent !== null) params.set("agent", String(filters.agent));
  if (filters.q) params.set("q", filters.q);
  if (filters.limit !== VIEW.DEFAULT_LIMIT) params.set("limit", String(filters.limit));
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Does any filter narrow the list? (The limit does not.) */
export const isFiltered = (filters) => filters.statuses.size > 0 || filters.agent !== null || filters.q !== "";

/**
 * The protocol view for `filters`, in the form the server echoes it (statuses in its order,
 * nulls for no filter), with the running tasks beside the window for the agents panel.
 */
export function toView(filters) {
  const status = Object.keys(TASK_STATUS).filter((s) => filters.statuses.has(s));
  return {
    status: status.length ? status : null, agent: filters.agent, q: filters.q || null, limit: filters.limit, current: true,
  };
}

/** Filters from a view as the server echoed it (what the page was rendered with). */
export function fromView(view) {
  const filters = noFilters();
  if (!view || typeof view !== "object") return filters;
  for (const status of Array.isArray(view.status) ? view.status : []) if (status in TASK_STATUS) filters.statuses.add(status);
  if (Number.isInteger(view.agent) && view.agent > 0) filters.agent = view.agent;
  if (typeof view.q === "string") filters.q = view.q.trim().slice(0, MAX_QUERY);
  if (Number.isInteger(view.limit) && view.limit >= 1) filters.limit = Math.min(VIEW.MAX_LIMIT, view.limit);
  return filters;
}

/** Do two filters ask for the same view? */
export const sameFilters = (a, b) => JSON.stringify(toView(a)) === JSON.stringify(toView(b));

/**
 * The filters in words, for the feed's caption and the empty table: "Failed or Running ·
 * agent atlas · “deploy”", or "" with none.
 * @param {Filters} filters
 * @param {(id: number) => string} agentName
 */
export function describeFilters(filters, agentName = (id) => `#${id}`) {
  const parts = [];
  const statuses = Object.entries(TASK_STATUS).filter(([s]) => filters.statuses.has(s)).map(([, label]) => label);
  if (statuses.length) parts.push(statuses.join(" or "));
  if (filters.agent !== null) parts.push(`agent ${agentName(filters.agent)}`);
  if (filters.q) parts.push(/^#\d+$/.test(filters.q) ? `task ${filters.q}` : `“${filters.q}”`);
  return parts.join(" · ");
}

/**
 * How many rows "Show more" asks for next, or null at the protocol's maximum.
 * @param {number} limit
 */
export function nextLimit(limit) {
  return limit >= VIEW.MAX_LIMIT ? null : Math.min(VIEW.MAX_LIMIT, limit + VIEW.STEP);
}

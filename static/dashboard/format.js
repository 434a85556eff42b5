// Labels, times and agent liveness: pure functions, shared by every panel.
import { TASK_STATUS } from "./lifecycle.js";

/** Task statuses in display order, with their labels: the server's (lifecycle.js). */
export { TASK_STATUS };

/** Agent liveness as shown: derived from the status and the last heartbeat. */
export const LIVENESS = Object.freeze({ online: "Online", stale: "Stale", offline: "Offline" });

const AGENT_STATUS = Object.freeze({ idle: "Idle", busy: "Busy", offline: "Offline" });

/** Label of a task status; unknown values are shown as they are. */
export const taskLabel = (status) => TASK_STATUS[status] ?? String(status ?? "");

/** Label of an agent status (idle, busy, offline). */
export const agentLabel = (status) => AGENT_STATUS[status] ?? String(status ?? "");

/** Milliseconds since the epoch of an ISO 8601 time, or null when absent or invalid. */
export function parseTime(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * "just now", "8 s ago", "3 min ago", "2 h ago", "4 d ago"; "never" for null.
 * A time slightly in the future (clock skew) reads "just now".
 */
export function ago(ms, now) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.floor((now - ms) / 1000);
  if (s < 1) return "just now";
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** Local wall-clock time, "14:02:11". */
export function clockTime(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** Whole seconds until `at` (rounded up, never negative): "Reconnecting in 4 s". */
export const secondsUntil = (at, now) => Math.max(0, Math.ceil((at - now) / 1000));

/** "10,000" */
export const count = (n) => Number(n).toLocaleString("en-US");

/**
 * Is the agent online, stale (silent for more than twice the heartbeat interval, or never
 * heard from) or offline (it said so)?
 * @param {{status: string, last_heartbeat: string|null}} agent
 * @param {number} now ms
 * @param {number} intervalMs heartbeat interval
 */
export function liveness(agent, now, intervalMs) {
  if (agent.status === "offline") return "offline";
  const seen = parseTime(agent.last_heartbeat);
  if (seen === null || now - seen > 2 * intervalMs) return "stale";
  return "online";
}

/** Text of an agent's badge: "Busy", "Idle", "Stale" or "Offline". */
export function agentBadge(agent, live) {
  return live === "online" ? agentLabel(agent.status) : LIVENESS[live];
}

/** Was `field` of `row` cut to an excerpt on the wire? (`row.truncated` lists such fields.) */
export const isCut = (row, field) => Array.isArray(row?.truncated) && row.truncated.includes(field);

/** Text of `row[field]` as shown: the excerpt followed by "…" when the server cut it. */
export function shownText(row, field) {
  const text = String(row?.[field] ?? "");
  return isCut(row, field) ? `${text}…` : text;
}

/** The shown text for a title attribute, with a hint where the rest is when it was cut. */
export function textWithHint(row, field) {
  const text = shownText(row, field);
  return isCut(row, field) ? `${text}\n(Shortened here: the full ${field} is in the admin.)` : text;
}

/** The page of a row (its task or agent page, or its admin change page), from a URL pattern with `/0/` where the id goes. */
export const adminUrl = (pattern, id) => pattern.replace("/0/", `/${encodeURIComponent(id)}/`);

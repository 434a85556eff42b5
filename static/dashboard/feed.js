// The activity feed: a short, readable line per meaningful change (progress ticks are not
// news), newest first, in a role="log" list. Text only ever goes in through textContent.
// It covers what the page holds: the tasks of its view (the window) and every agent.
import { agentLabel, clockTime, shownText, taskLabel } from "./format.js";

const quote = (text) => `“${text}”`;
const titleOf = (row) => quote(shownText(row, "title")); // an excerpt ends with "…"

/**
 * A feed line for one task change, or null when it is not worth one.
 * @param {import("./model.js").Change} change a task that changed, came into the window
 *   (`entered`) or left it (`left`; neither: it was deleted)
 * @param {(id: unknown) => string} agentName
 * @returns {{entity: "task", id: unknown, tone: string, text: string, gone: boolean}|null}
 */
export function describeTask({ before, after, entered = "new", left = null }, agentName) {
  const row = after ?? before;
  const line = (tone, text, gone = !after) => ({ entity: "task", id: row.id, tone, text, gone });
  if (!before) {
    if (entered === "new") return line(after.status, `New task ${titleOf(after)} (${taskLabel(after.status)})`);
    if (entered === "matched") return line(after.status, `${titleOf(after)} is now in this view (${taskLabel(after.status)})`);
    return null; // it moved up from below the window: not news
  }
  if (!after) {
    if (left === "stopped") return line("left", `${titleOf(before)} is no longer in this view`, false); // its page says why
    if (left === "pushed") return null; // newer tasks pushed it out at the bottom
    return line("deleted", `Task ${titleOf(before)} was deleted`);
  }
  if (before.status !== after.status) {
    const who = after.agent !== null && after.agent !== undefined ? ` on ${agentName(after.agent)}` : "";
    return line(after.status, `${titleOf(after)}: ${taskLabel(before.status)} → ${taskLabel(after.status)}${who}`);
  }
  if (before.title !== after.title) return line("renamed", `${titleOf(before)} renamed to ${titleOf(after)}`);
  if (before.agent !== after.agent && after.agent !== null && after.agent !== undefined) {
    return line(after.status, `${titleOf(after)} assigned to ${agentName(after.agent)}`);
  }
  return null;
}

/** A feed line for one agent change, or null (heartbeats alone are not news). */
export function describeAgent({ before, after }) {
  const row = after ?? before;
  const line = (tone, text) => ({ entity: "agent", id: row.id, tone, text, gone: !after });
  if (!before) return line(after.status, `Agent ${after.name} joined (${agentLabel(after.status)})`);
  if (!after) return line("deleted", `Agent ${before.name} was removed`);
  if (before.status !== after.status) {
    return line(after.status, after.status === "offline" ? `${after.name} went offline` : `${after.name} is ${agentLabel(after.status).toLowerCase()}`);
  }
  if (before.name !== after.name) return line("renamed", `Agent ${before.name} renamed to ${after.name}`);
  return null;
}

/**
 * Lines for one render's changes; beyond `limit`, the rest become one summary line so a
 * burst of 500 changes is a few lines, not 500.
 */
export function feedLines(diff, agentName, limit = 6) {
  const lines = [
    ...diff.agents.map((c) => describeAgent(c)),
    // The rows of another view came with it: they are not news.
    ...(diff.viewChanged ? [] : diff.tasks.map((c) => describeTask(c, agentName))),
  ].filter(Boolean);
  if (lines.length <= limit) return lines;
  const rest = lines.length - (limit - 1);
  return [...lines.slice(0, limit - 1), { entity: null, id: null, tone: "summary", text: `…and ${rest} more changes`, gone: true }];
}

/** The feed list in the page. */
export class Feed {
  /**
   * @param {HTMLElement} list the role="log" element
   * @param {{href: (entity: string, id: unknown) => string, max?: number}} options
   */
  constructor(list, { href, max = 60 }) {
    this.list = list;
    this.href = href;
    this.max = max;
  }

  /** Put `lines` on top (the first line ends up first), then trim the oldest. */
  add(lines, now) {
    if (lines.length === 0) return;
    const doc = this.list.ownerDocument;
    const fragment = doc.createDocumentFragment();
    const time = clockTime(now);
    for (const line of lines) fragment.append(this.#item(doc, line, time));
    this.list.querySelector(".feed-empty")?.remove();
    this.list.prepend(fragment);
    while (this.list.children.length > this.max) this.list.lastElementChild.remove();
  }

  /** @private */
  #item(doc, line, time) {
    const li = doc.createElement("li");
    li.className = `feed-item tone-${line.tone}`;
    const stamp = doc.createElement("time");
    stamp.className = "feed-time";
    stamp.textContent = time;
    const text = doc.createElement(line.gone ? "span" : "a");
    text.className = "feed-text";
    text.textContent = line.text;
    if (!line.gone) text.href = this.href(line.entity, line.id);
    li.append(stamp, text);
    return li;
  }
}

// The task page's actions and their words. Cancel and requeue are the dashboard's own
// (static/dashboard/actions.js: the same statuses, the same confirmation with the count, the
// operator API); "mark failed" is an operator closing a running task with a reason
// (POST /tasks/<id>/fail, tasks/pages.py; the rule is tasks/domain.py `fail`). Pure, for
// node tests; actions-ui.js draws them.
import { ACTIONS as BOARD, confirmation, errorText, recheck } from "../dashboard/actions.js";
import { TASK_ACTIONS } from "../dashboard/lifecycle.js";

export { errorText, recheck };

/** Every action of the page, the statuses each applies to, and its words (the server's). */
export const ACTIONS = Object.freeze({ ...BOARD, ...("fail" in TASK_ACTIONS ? { fail: TASK_ACTIONS.fail } : {}) });

/** Does `action` apply to a task in `status`? */
export const offered = (action, status) => ACTIONS[action].from.includes(status);

/** What the confirmation of `action` on `row` (the task as the page shows it) acts on, frozen. */
export function plan(action, row) {
  const item = { id: row.id, status: row.status, version: row.version, title: String(row.title ?? "") };
  const ok = offered(action, row.status);
  return { action, eligible: ok ? [item] : [], skipped: ok ? [] : [item] };
}

/** The confirmation's words: the dashboard's for cancel and requeue, the same shape for "fail". */
export function words(planned) {
  if (planned.action in BOARD) return { ...confirmation(planned), reason: false };
  if (planned.eligible.length === 0) {
    const { status } = planned.skipped[0];
    return {
      title: "Nothing to mark failed", reason: false, button: "",
      text: `1 selected task cannot be marked failed (${status}) and will be left as it is.`,
    };
  }
  return {
    title: "Mark 1 task failed?", reason: true, button: "Mark 1 task failed",
    text: "1 task will be marked failed, with the reason below as its error. Its agent's next report is refused.",
  };
}

/** One line for what happened: `changed` (from recheck) or the server's answer. */
export function outcome(action, { changed = [], result = null }) {
  const { done, verb } = ACTIONS[action];
  if (changed.length) return `The task changed before it could be sent (now ${changed[0].now}) and was left alone.`;
  if (result?.ok) return `${done}.`;
  const it = action === "fail" ? "mark it failed" : `${verb} it`;
  return `The server refused to ${it}: ${result?.error ?? "no answer"}`;
}

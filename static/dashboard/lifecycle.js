// The task lifecycle as the server declares it (tasks/lifecycle.py `as_json()`): the statuses
// in order with their labels, and the operator actions with the statuses each applies to.
// A page carries it in <script type="application/json" id="task-lifecycle">; node tests set
// `globalThis.taskLifecycle` to the server's own copy first (tests/js/lifecycle.setup.mjs,
// kept equal to `as_json()` by tests/test_lifecycle.py). Nothing here names a status.

function load() {
  const element = globalThis.document?.getElementById?.("task-lifecycle");
  if (element) return JSON.parse(element.textContent);
  return globalThis.taskLifecycle ?? { statuses: [], actions: {} };
}

const data = load();

/** Task statuses in display order: value -> label (text, never colour alone). */
export const TASK_STATUS = Object.freeze(Object.fromEntries(data.statuses.map((s) => [s.value, s.label])));

/** What each status means, for tooltips: value -> hint. */
export const STATUS_HINT = Object.freeze(Object.fromEntries(data.statuses.map((s) => [s.value, s.hint])));

/** Operator actions: name -> {label, doing, done, verb, verbed, from: [statuses], to}. */
export const TASK_ACTIONS = Object.freeze(Object.fromEntries(Object.entries(data.actions).map(
  ([name, action]) => [name, Object.freeze({ ...action, from: Object.freeze([...action.from]) })])));

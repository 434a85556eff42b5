// The task lifecycle the server declares (tasks/lifecycle.py `as_json()`), as a page receives
// it: import this before the page's modules. tests/test_lifecycle.py keeps lifecycle.json
// equal to the server's.
import { readFileSync } from "node:fs";

globalThis.taskLifecycle = JSON.parse(readFileSync(new URL("./lifecycle.json", import.meta.url), "utf8"));

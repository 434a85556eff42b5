// The agent page (/agents/<id>/): its own row and the rows of its tasks drive the page.
import { startDetailPage } from "./live.js";
import { AgentVersion } from "./versions.js";

const versions = new AgentVersion(Number(document.body.dataset.id));

startDetailPage((store, timeline) => {
  const version = versions.update(store);
  if (version !== null) timeline.want(version);
});

// The task page (/tasks/<id>/): the stream's row of this task drives the timeline.
import { startDetailPage } from "./live.js";
import { taskVersion } from "./versions.js";

const id = Number(document.body.dataset.id);

startDetailPage((store, timeline) => {
  const version = taskVersion(store, id, timeline);
  if (version !== null) timeline.want(version);
});

"""Template context the pages share."""
from . import lifecycle as task_lifecycle


def lifecycle(request):
    """The task lifecycle (tasks/lifecycle.py) for the pages' scripts, which read their
    statuses, labels and actions from it (static/dashboard/lifecycle.js)."""
    return {"task_lifecycle": task_lifecycle.as_json()}

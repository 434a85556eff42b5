"""Tasks and agents as the dashboard stream shows them (registered in TasksConfig.ready()).

Text is bounded on the wire (realtime/rows.py `bounded`): a task's error travels as an excerpt
of REALTIME_WIRE_TEXT_CHARS characters; the short fields at their column sizes, which SQLite
does not enforce."""
from django.conf import settings

from realtime.rows import bounded, iso


def task_row(task):
    return bounded({
        "id": task.pk,
        "title": task.title,
        "status": task.status,
        "progress": task.progress,
        "agent": task.agent_id,
        "error": task.error,
        "version": task.version,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
    }, (("title", 200), ("error", settings.REALTIME_WIRE_TEXT_CHARS)))


def agent_row(agent):
    return bounded({
        "id": agent.pk,
        "name": agent.name,
        "status": agent.status,
        "hostname": agent.hostname,
        "last_heartbeat": iso(agent.last_heartbeat),
        "version": agent.version,
        "updated_at": iso(agent.updated_at),
    }, (("name", 100), ("hostname", 255)))

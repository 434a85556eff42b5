"""How a row looks on the wire. One function per entity; each row is serialised once per change.

A row is bounded in size whatever the database holds: text fields travel as an excerpt
(REALTIME_WIRE_TEXT_CHARS for long text, the column's max_length for short ones, which
SQLite does not enforce), and `truncated` names the fields that were cut. The full text is
in the admin and the API. This is what lets every frame fit (realtime/frames.py).
"""
from django.conf import settings


def _iso(value):
    return value.isoformat() if value is not None else None


def _bounded(row, limits):
    """Cut the text fields of `row` to their limits; list the cut ones in `truncated`."""
    cut = []
    for name, size in limits:
        value = row[name]
        if value is not None and len(value) > size:
            row[name] = value[:size]
            cut.append(name)
    if cut:
        row["truncated"] = cut
    return row


def task_row(task):
    return _bounded({
        "id": task.pk,
        "title": task.title,
        "status": task.status,
        "progress": task.progress,
        "agent": task.agent_id,
        "error": task.error,
        "version": task.version,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
    }, (("title", 200), ("error", settings.REALTIME_WIRE_TEXT_CHARS)))


def agent_row(agent):
    return _bounded({
        "id": agent.pk,
        "name": agent.name,
        "status": agent.status,
        "hostname": agent.hostname,
        "last_heartbeat": _iso(agent.last_heartbeat),
        "version": agent.version,
        "updated_at": _iso(agent.updated_at),
    }, (("name", 100), ("hostname", 255)))


ROW_SERIALIZERS = {"task": task_row, "agent": agent_row}


def serialize(instance):
    return ROW_SERIALIZERS[instance.stream_entity](instance)

"""How a row looks on the wire. One function per entity; each row is serialised once per change."""


def _iso(value):
    return value.isoformat() if value is not None else None


def task_row(task):
    return {
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
    }


def agent_row(agent):
    return {
        "id": agent.pk,
        "name": agent.name,
        "status": agent.status,
        "hostname": agent.hostname,
        "last_heartbeat": _iso(agent.last_heartbeat),
        "version": agent.version,
        "updated_at": _iso(agent.updated_at),
    }


ROW_SERIALIZERS = {"task": task_row, "agent": agent_row}


def serialize(instance):
    return ROW_SERIALIZERS[instance.stream_entity](instance)

"""Reading tasks and agents: what the pages, the API and the rules ask the database. Writes,
and the rules they follow, are in tasks/domain.py."""
from django.db.models import OuterRef, Q, Subquery

from realtime import registry

from . import lifecycle
from .errors import NotFound
from .models import Agent, Task

RUNNING = lifecycle.RUNNING

# "What is this agent running": the running task that started last (newest id on a tie).
# The rules keep it to one task; the order makes the answer the same everywhere anyway.
CURRENT_ORDER = ("-started_at", "-id")


def current_task(agent_id):
    """The task the agent is running now, or None."""
    return Task.objects.filter(agent_id=agent_id, status=RUNNING).order_by(*CURRENT_ORDER).first()


def current_tasks(agent_ids=None):
    """{agent id: its current task} for many agents in one query."""
    running = Task.objects.filter(status=RUNNING, agent__isnull=False)
    if agent_ids is not None:
        running = running.filter(agent_id__in=list(agent_ids))
    chosen = {}
    for task in running.order_by(*CURRENT_ORDER):
        chosen.setdefault(task.agent_id, task)
    return chosen


def with_current_task(agents):
    """Annotate an agent queryset with `running_task_id`, in the same query."""
    running = Task.objects.filter(agent=OuterRef("pk"), status=RUNNING).order_by(*CURRENT_ORDER)
    return agents.annotate(running_task_id=Subquery(running.values("pk")[:1]))


def get_task(task_id, with_agent=False):
    tasks = Task.objects.select_related("agent") if with_agent else Task.objects
    try:
        return tasks.get(pk=task_id)  # get(): no ORDER BY to build for a primary key
    except (Task.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No task with id {task_id}.") from None


def get_agent(agent_id):
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:  # deleted while its token was in flight
        raise NotFound(f"No agent with id {agent_id}; it was deleted. Ask an operator for a new token.")
    return agent


def tasks_matching(*, status=None, agent=None, q=None, before=None, search=None):
    """The tasks a list asks for, newest first (highest id first): `status` (a list), `agent`
    and `q` mean what they mean in a dashboard's view (tasks/windows.py, so a list and a
    dashboard agree row for row), `before` continues past an id, `search` also looks in the
    description. Raises realtime.viewspec.ViewError for a malformed filter."""
    entity = registry.windowed()
    view = entity.views.parse({"status": status, "agent": agent, "q": q}, entity.watched)
    tasks = entity.views.query(view, below=before).select_related("agent")
    if search:
        tasks = tasks.filter(Q(title__icontains=search) | Q(description__icontains=search))
    return tasks.order_by("-pk")


def agents_matching(*, status=None, search=None):
    """Agents by name, each with `running_task_id`: `status` and a `search` in name or hostname."""
    agents = with_current_task(Agent.objects.all())
    if status is not None:
        agents = agents.filter(status=status)
    if search:
        agents = agents.filter(Q(name__icontains=search) | Q(hostname__icontains=search))
    return agents.order_by("name", "id")

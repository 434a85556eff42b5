"""API endpoints. Agents authenticate with a bearer token, operators with a staff session.

Views validate input and shape output; every change is made by tasks/domain.py (the rules,
one transaction that takes the stream lock first) and reaches dashboards through the same
sequencing and publishing path as the admin. Domain errors become HTTP answers in errors.py.
"""
from django.conf import settings
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.viewspec import ViewError

from .. import domain, report_batch, selectors
from ..models import Agent, Task
from .authentication import AgentTokenAuthentication
from .errors import error_response, exception_handler
from .pagination import BoundedLimitOffsetPagination
from .parsers import JSONBodyParser
from .permissions import IsAgent, IsOperator
from .schema import ApiSchema, OperatorSchema
from .serializers import (
    AgentFilterSerializer, AgentHelloSerializer, AgentSerializer, ErrorSerializer, TaskCreateSerializer,
    TaskEditSerializer, TaskFailSerializer, TaskFilterSerializer, TaskReportSerializer, TaskSerializer,
    ValidationErrorSerializer,
)
from .throttles import AgentRateThrottle, OperatorRateThrottle

ERROR_TEXT = {
    400: "Invalid input or a status change that makes no sense; the body names each field and how to fix it.",
    401: "Missing, malformed, invalid or revoked agent token.",
    403: "Authenticated, but not allowed: wrong kind of caller, missing permission, or not your task.",
    404: "No such task or agent.",
    409: "The task or agent is in a state that forbids this now (a lost claim, you already run a task, "
         "or a status change the task's current status does not allow, e.g. reporting on a cancelled task).",
    429: "Too many requests; retry after the number of seconds in the Retry-After header.",
    503: "Busy: the change stream stayed locked, a progress report waited API_REPORT_WAIT for the write "
         "ahead of it, or every request thread of the process is in use. Retry after the Retry-After seconds.",
}


QUEUE_EMPTY = "The queue is empty; try again later."


def endpoint_schema(tag, operation_id, answer, *codes, **kwargs):
    """extend_schema for one endpoint: its answer (a serializer for 200, or {status: answer}),
    the error answers `codes` it can give (and 503, busy, which any can), anything else
    extend_schema takes. The summary and the description are the method's docstring: its
    first line, and the paragraphs after it (tasks/api/schema.py)."""
    answers = answer if isinstance(answer, dict) else {200: answer}
    return extend_schema(tags=[tag], operation_id=operation_id, responses={**answers, **errors(*codes)}, **kwargs)


def agent_schema(operation_id, answer, *codes, **kwargs):
    """endpoint_schema for agent endpoints."""
    return endpoint_schema("agent", operation_id, answer, *codes, **kwargs)


def operator_schema(operation_id, answer, *codes, **kwargs):
    """endpoint_schema for operator endpoints."""
    return endpoint_schema("operator", operation_id, answer, *codes, **kwargs)


def errors(*codes):
    """OpenAPI descriptions of the error answers an endpoint can give (503, busy, any of them)."""
    return {
        code: OpenApiResponse(ValidationErrorSerializer if code == 400 else ErrorSerializer, description=ERROR_TEXT[code])
        for code in (*codes, 503)
    }


class JSONOnly(DefaultContentNegotiation):
    """Always answer JSON, whatever the Accept header asks for: API clients never get an
    HTML page (DRF's browsable API) or a 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _ApiView:
    parser_classes = [JSONBodyParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    schema = ApiSchema()
    pagination_class = BoundedLimitOffsetPagination

    def get_exception_handler(self):
        return exception_handler


class AgentApiView(_ApiView, APIView):
    """Base for agent endpoints: bearer token, per-agent throttle."""

    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]
    throttle_classes = [AgentRateThrottle]

    @property
    def agent(self):
        return self.request.user.agent

    def record_hello(self, request):
        """Register and heartbeat share this: validate the hello, record that the agent is alive."""
        hello = AgentHelloSerializer(data=request.data)
        hello.is_valid(raise_exception=True)
        return domain.heartbeat(agent_id=self.agent.pk, hostname=hello.validated_data.get("hostname"))

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise NotAuthenticated(
                "No agent token: send `Authorization: Bearer <token>` (issue one with "
                "`manage.py issue_agent_token <agent name>` or in the admin)."
            )
        super().permission_denied(request, message, code)


class OperatorMixin(_ApiView):
    """Base for operator endpoints: staff session (CSRF on writes), per-user throttle.

    The token authenticator is listed too, so an agent calling here gets a clear 403."""

    authentication_classes = [SessionAuthentication, AgentTokenAuthentication]
    permission_classes = [IsOperator]
    throttle_classes = [OperatorRateThrottle]
    permission_model = Task
    schema = OperatorSchema()


@csrf_exempt  # a wrong path is the news, whatever the method: not a CSRF failure
def not_found(request, *args, **kwargs):
    """JSON 404 for unknown URLs under /api/, so API clients never get an HTML page."""
    path = request.path
    hint = " Ids are positive integers."
    if not path.endswith("/"):
        try:
            resolve(path + "/")
            hint = f" Did you mean {path}/ (with the trailing slash)?"
        except Resolver404:
            pass
    return error_response(404, f"No API endpoint at {path}.{hint} The endpoints are listed at /api/docs/.")


# Agents ----------------------------------------------------------------------------------

class AgentRegistrationSerializer(AgentSerializer):
    """The agent, plus how often to send heartbeats."""

    heartbeat_every = serializers.SerializerMethodField(help_text="Send a heartbeat at least this often (seconds).")
    offline_after = serializers.SerializerMethodField(help_text="Silence longer than this (seconds) marks the agent offline.")

    class Meta(AgentSerializer.Meta):
        fields = AgentSerializer.Meta.fields + ["heartbeat_every", "offline_after"]
        read_only_fields = fields

    def get_heartbeat_every(self, agent) -> float:
        return round(settings.AGENT_OFFLINE_AFTER / 3, 3)

    def get_offline_after(self, agent) -> float:
        return settings.AGENT_OFFLINE_AFTER


class RegisterView(AgentApiView):
    @agent_schema("agent_register", AgentRegistrationSerializer, 400, 401, 403, 404, 429, request=AgentHelloSerializer)
    def post(self, request):
        """Say hello (at start-up): records the hostname, marks the agent idle or busy.

        Call once when the agent process starts. Records `hostname` (when sent) and that the agent was heard from:
        an offline agent comes back idle, or busy when it still runs a task, which the answer names in
        `current_task` so that an agent that restarted can finish or fail it. The answer also says how often to send
        heartbeats (`heartbeat_every`) and after how many seconds of silence the agent is marked offline
        (`offline_after`)."""
        return Response(AgentRegistrationSerializer(self.record_hello(request)).data)


class HeartbeatView(AgentApiView):
    @agent_schema("agent_heartbeat", AgentSerializer, 400, 401, 403, 404, 429, request=AgentHelloSerializer)
    def post(self, request):
        """I am alive. An offline agent comes back idle (or busy if it runs a task).

        Send one every `heartbeat_every` seconds while idle; claims and reports count as being heard from too.
        Records that the agent is alive, and `hostname` when sent. Silent for longer than AGENT_OFFLINE_AFTER, an
        agent is marked offline by the liveness sweep and its running task is requeued or failed
        (AGENT_OFFLINE_TASK_POLICY); its next heartbeat brings it back."""
        return Response(AgentSerializer(self.record_hello(request)).data)


class MeView(AgentApiView):
    @agent_schema("agent_me", AgentSerializer, 401, 403, 429)
    def get(self, request):
        """The calling agent, with the task it is running (no heartbeat is recorded).

        Reads the agent the token belongs to: its status, `last_heartbeat`, and `current_task`, the id of the task
        it runs (null when none). Writes nothing, so it does not count as being heard from."""
        return Response(AgentSerializer(self.agent).data)


class ClaimNextView(AgentApiView):
    @agent_schema("agent_claim_next", {200: TaskSerializer, 204: OpenApiResponse(description=QUEUE_EMPTY)},
                  401, 403, 404, 409, 429, request=None)
    def post(self, request):
        """Claim the oldest queued task; it becomes running on this agent.

        Takes the oldest queued task and makes it running on this agent at 0%, in one transaction: no two agents
        ever get the same task. 204 when nothing is queued (ask again later); 409 with `current_task` when this
        agent still runs a task (finish or fail that one first)."""
        task = domain.claim(agent_id=self.agent.pk)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)


class ClaimTaskView(AgentApiView):
    @agent_schema("agent_claim_task", TaskSerializer, 401, 403, 404, 409, 429, request=None)
    def post(self, request, pk):
        """Claim one particular queued task; 409 if it is no longer queued.

        Makes the task with this id running on this agent. 409 when it is no longer queued (another agent claimed
        it, an operator cancelled it) or when this agent still runs a task (`current_task`); 404 when there is no
        such task."""
        return Response(TaskSerializer(domain.claim(agent_id=self.agent.pk, task_id=pk)).data)


class AgentTaskView(AgentApiView):
    @agent_schema("agent_task_read", TaskSerializer, 401, 403, 404, 429)
    def get(self, request, pk):
        """One of this agent's tasks (to see e.g. whether an operator cancelled it).

        A task assigned to this agent, every field included. 403 when it is not (or no longer) this agent's: it was
        requeued after the agent went silent, or given to another; 404 when there is no such task."""
        task = selectors.get_task(pk)
        if task.agent_id != self.agent.pk:
            raise PermissionDenied(f"Task {pk} is not assigned to you.")
        return Response(TaskSerializer(task).data)

    @agent_schema("agent_task_report", TaskSerializer, 400, 401, 403, 404, 409, 429, request=TaskReportSerializer)
    def patch(self, request, pk):
        """Report progress, success, or failure (with an error) of a task this agent runs.

        `progress` (0-100) while running; `status: succeeded` when done (progress becomes 100); `status: failed`
        with `error` saying why. 409 when the task's status forbids it (an operator cancelled it: stop working on
        it); 403 when it is no longer this agent's. Progress reports that arrive together are written in one
        transaction; one waits at most API_REPORT_WAIT seconds for the write ahead of it, then gets a 503 with
        Retry-After, and sending it again is safe."""
        report = TaskReportSerializer(data=request.data)
        report.is_valid(raise_exception=True)
        values = report.validated_data
        if set(values) == {"progress"}:  # the common report: written together with others (tasks/report_batch.py)
            task = report_batch.submit(self.agent.pk, pk, values["progress"])
        else:
            task = domain.report(agent_id=self.agent.pk, task_id=pk, **values)
        return Response(TaskSerializer(task).data)


# Operators -------------------------------------------------------------------------------

class TaskListView(OperatorMixin, generics.GenericAPIView):
    serializer_class = TaskSerializer

    def get_queryset(self):
        params = self.request.query_params
        data = params.dict()
        if "status" in params:  # repeated, comma-separated, or both
            data["status"] = ",".join(params.getlist("status"))
        filters = TaskFilterSerializer(data=data)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        try:
            return selectors.tasks_matching(status=values.get("status"), agent=values.get("agent"), q=values.get("q"),
                                            before=values.get("before"), search=values.get("search"))
        except ViewError as refused:  # "view.q is ...": the parameter's name, then what is wrong
            name, _, message = str(refused).partition(" ")
            raise ValidationError({name.removeprefix("view.") or "non_field_errors": [message]}) from None

    @operator_schema("tasks_list", TaskSerializer(many=True), 400, 403, 429, parameters=[TaskFilterSerializer])
    def get(self, request):
        """List tasks, newest first, with a dashboard's filters; page by offset or past an id.

        Newest first (highest id first), the order of a dashboard. `status` (one or more), `agent` and `q` mean
        exactly what they mean in a dashboard's view, so the list shows the rows a dashboard with the same view
        shows; `search` also looks in the description. Older tasks past a dashboard's window: `before=<id>`, then
        `before=<the last id of each page>` (keyset paging, stable while tasks are added). `limit`/`offset` page as
        usual; `count` is the number of matching tasks (with an id below `before`, when given). A bad value is a 400
        naming the parameter."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(TaskSerializer(page, many=True).data)

    @operator_schema("tasks_create", {201: TaskSerializer}, 400, 403, 429, request=TaskCreateSerializer)
    def post(self, request):
        """Add a queued task.

        Adds a task in the queued status at 0%, with `title` and an optional `description`. Agents' claims take the
        oldest queued task first. Needs the add_task permission."""
        data = TaskCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = domain.create(**data.validated_data)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailView(OperatorMixin, APIView):
    @operator_schema("tasks_read", TaskSerializer, 403, 404, 429)
    def get(self, request, pk):
        """One task.

        A task with every field, including the whole `error` text (dashboards get an excerpt of a long one). 404
        when there is no such task."""
        return Response(TaskSerializer(selectors.get_task(pk)).data)

    @operator_schema("tasks_edit", TaskSerializer, 400, 403, 404, 429, request=TaskEditSerializer)
    def patch(self, request, pk):
        """Change a task's title or description (status changes: cancel, requeue, fail).

        Sets `title`, `description` or both, whatever the task's status; send at least one. Status changes have
        endpoints of their own (cancel, requeue, fail). Needs the change_task permission."""
        data = TaskEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(TaskSerializer(domain.edit(task_id=pk, **data.validated_data)).data)


class TaskCancelView(OperatorMixin, APIView):
    operator_action = "change"

    @operator_schema("tasks_cancel", TaskSerializer, 403, 404, 409, 429, request=None)
    def post(self, request, pk):
        """Cancel a queued or running task (its agent gets a 409 on its next report).

        Queued or running becomes cancelled. A running task's agent becomes idle and learns it on its next report
        (409). 409 for a task that already succeeded, failed or was cancelled."""
        return Response(TaskSerializer(domain.cancel(task_id=pk)).data)


class TaskRequeueView(OperatorMixin, APIView):
    operator_action = "change"

    @operator_schema("tasks_requeue", TaskSerializer, 403, 404, 409, 429, request=None)
    def post(self, request, pk):
        """Put a failed or cancelled task back in the queue at 0%.

        Failed or cancelled becomes queued, at 0%, with no agent and no error, to be claimed again. 409 for a task
        in any other status."""
        return Response(TaskSerializer(domain.requeue(task_id=pk)).data)


class TaskFailView(OperatorMixin, APIView):
    operator_action = "change"

    @operator_schema("tasks_fail", TaskSerializer, 400, 403, 404, 409, 429, request=TaskFailSerializer)
    def post(self, request, pk):
        """Mark a running task failed, with the reason (its agent gets a 409 on its next report).

        Running becomes failed, with `reason` kept as the task's `error` (surrounding spaces trimmed); its progress
        stays where it was, its agent becomes idle and learns it on its next report (409). 400 for an empty reason;
        409 for a task that is not running. Needs the change_task permission."""
        data = TaskFailSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(TaskSerializer(domain.fail(task_id=pk, reason=data.validated_data["reason"])).data)


class AgentListView(OperatorMixin, generics.GenericAPIView):
    serializer_class = AgentSerializer
    permission_model = Agent

    def get_queryset(self):
        filters = AgentFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        return selectors.agents_matching(status=values.get("status"), search=values.get("search"))

    @operator_schema("agents_list", AgentSerializer(many=True), 400, 403, 429, parameters=[AgentFilterSerializer])
    def get(self, request):
        """List agents by name; filter by status or text in name/hostname.

        Ordered by name. `status` filters by idle, busy or offline; `search` looks in the name and the hostname, in
        any case. Each agent carries `current_task`, the id of the task it runs."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AgentSerializer(page, many=True).data)


class AgentDetailView(OperatorMixin, APIView):
    permission_model = Agent

    @operator_schema("agents_read", AgentSerializer, 403, 404, 429)
    def get(self, request, pk):
        """One agent.

        An agent with `last_heartbeat` and `current_task`, the id of the task it runs (null when none). 404 when
        there is no such agent."""
        agent = selectors.with_current_task(Agent.objects.filter(pk=pk)).first()
        if agent is None:
            return Response({"detail": f"No agent with id {pk}."}, status=status.HTTP_404_NOT_FOUND)
        return Response(AgentSerializer(agent).data)


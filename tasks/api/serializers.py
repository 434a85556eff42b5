"""Request and response shapes. Input serializers validate only; tasks/domain.py does the writes.

Input fields are strict so that the OpenAPI schema says exactly what is accepted: a string
field takes only a JSON string (not 0 or true), an integer only a JSON integer (not "5" or
5.0), and each text field's pattern states what its validators enforce (not blank, no NUL).
"""
import re

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import lifecycle, selectors
from ..models import TEXT_LIMIT, Agent, Task

MAX_BIGINT = 2**63 - 1  # ids and offsets beyond this are not ids (and overflow SQLite)
# What DRF's CharField checks (not blank once trimmed, no NUL), said as patterns the schema
# carries. The NUL-free pattern needs one character, so a blank-allowing field's schema
# ("this pattern, or the empty string") has exactly one alternative for "".
# NOT_BLANK reads the leading white space, then the first other character, then the rest:
# each part can match in only one way, so a refused text costs one pass. (Written as "no NUL,
# then a non-space, then no NUL", 10,000 characters and a NUL took 0.25 s of backtracking.)
NOT_BLANK = RegexValidator(r"^\s*[^\s\x00][^\x00]*$", "Text must not be blank or contain NUL characters.")
NO_NUL = RegexValidator(r"^[^\x00]+$", "Text must not contain NUL characters.")


class StrictCharField(serializers.CharField):
    """A CharField that takes only strings, and counts max_length before trimming (as the
    schema's maxLength does)."""

    def __init__(self, **kwargs):
        validators = kwargs.pop("validators", [])
        super().__init__(**kwargs)
        self.validators.append(NO_NUL if self.allow_blank else NOT_BLANK)
        self.validators.extend(validators)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes only JSON integers (DRF also takes "5", 5.0 and true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter: digits only (DRF also takes "5.0" and " 5")."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"-?[0-9]+", data):
            self.fail("invalid")
        return super().to_internal_value(data)
# The statuses an agent may report on a running task (tasks/lifecycle.py decides which change is allowed).
AGENT_STATUSES = [(s, lifecycle.BY_VALUE[s].label) for s in lifecycle.reachable(lifecycle.RUNNING, lifecycle.AGENT)]


class TaskSerializer(serializers.ModelSerializer):
    """A task as the API shows it."""

    agent_name = serializers.CharField(source="agent.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Task
        fields = [
            "id", "title", "description", "status", "progress", "agent", "agent_name", "error",
            "version", "created_at", "updated_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class AgentSerializer(serializers.ModelSerializer):
    """An agent as the API shows it; `current_task` is the task it is running, if any."""

    current_task = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = ["id", "name", "status", "hostname", "last_heartbeat", "current_task", "version", "created_at", "updated_at"]
        read_only_fields = fields

    def get_current_task(self, agent) -> int | None:
        if hasattr(agent, "running_task_id"):  # annotated by selectors.with_current_task()
            return agent.running_task_id
        task = selectors.current_task(agent.pk)
        return task.pk if task else None


class TaskCreateSerializer(serializers.Serializer):
    """An operator adds a task; it starts queued."""

    title = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT, default="")


class TaskEditSerializer(serializers.Serializer):
    """An operator edits a task's text; status changes go through cancel and requeue."""

    title = StrictCharField(max_length=200, required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT)

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("Send at least one of: title, description.")
        return data


class AgentHelloSerializer(serializers.Serializer):
    """Register and heartbeat bodies: optionally the host the agent runs on."""

    hostname = StrictCharField(max_length=255, required=False, allow_blank=True)


class TaskReportSerializer(serializers.Serializer):
    """An agent's report on its task: progress, and/or a final status (with an error if failed)."""

    progress = StrictIntegerField(min_value=0, max_value=100, required=False)
    status = serializers.ChoiceField(choices=AGENT_STATUSES, required=False)
    error = StrictCharField(required=False, allow_blank=False, max_length=TEXT_LIMIT)

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("Send at least one of: progress, status, error.")
        status = data.get("status")
        if status == Task.Status.FAILED and not data.get("error"):
            raise serializers.ValidationError({"error": ["Say why the task failed: `error` is required with status failed."]})
        if "error" in data and status != Task.Status.FAILED:
            raise serializers.ValidationError({"error": ["`error` is only accepted together with status failed."]})
        if status == Task.Status.SUCCEEDED and data.get("progress", 100) != 100:
            raise serializers.ValidationError({"progress": ["A succeeded task is 100% done: send 100 or leave progress out."]})
        return data


TASK_STATUSES = list(lifecycle.VALUES)


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": TASK_STATUSES}})
class StatusesField(serializers.Field):
    """One or more statuses: `status=queued&status=failed` (joined with commas before it gets
    here) or `status=queued,failed`. The value is the statuses in their model order."""

    default_error_messages = {
        "invalid": "Send statuses as text.",
        "empty": "An empty status: send one or more of {known}, repeated or separated by commas.",
        "unknown": "Unknown status {unknown}; known: {known}.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        asked = [part.strip() for part in data.split(",")]
        known = ", ".join(TASK_STATUSES)
        if not all(asked):
            self.fail("empty", known=known)
        unknown = sorted(set(asked) - set(TASK_STATUSES))
        if unknown:
            self.fail("unknown", unknown=", ".join(repr(u) for u in unknown), known=known)
        return [status for status in TASK_STATUSES if status in asked]

    def to_representation(self, value):
        return list(value)


class TaskFilterSerializer(serializers.Serializer):
    """Query parameters of the task list (validated from a plain dict: `?status=` is an
    invalid status, not an absent one; an empty `?search=` or `?q=` matches everything).

    `status`, `agent` and `q` are a dashboard's view (tasks/windows.py); `before` pages past
    a dashboard's window by id."""

    status = StatusesField(required=False, help_text=(
        "Only tasks in one of these statuses: repeat the parameter (`status=queued&status=failed`) "
        "or separate them with commas (`status=queued,failed`)."))
    agent = QueryIntegerField(min_value=1, max_value=MAX_BIGINT, required=False,
                              help_text="Only tasks of this agent (its id).")
    q = StrictCharField(required=False, allow_blank=True, max_length=200, help_text=(
        "A part of the title, as a dashboard's search means it: the letters A-Z match either case, every "
        "other character only itself (`é` is not `É`); or `#<id>` for one task. Surrounding spaces are "
        "ignored."))
    search = StrictCharField(required=False, allow_blank=True, max_length=200,
                             help_text="Text anywhere in the title or the description, in any case.")
    before = QueryIntegerField(min_value=1, max_value=MAX_BIGINT, required=False, help_text=(
        "Only tasks with a smaller id: the next page of older tasks is `before=<the last id of this "
        "page>`, whatever was added meanwhile."))


class TaskFailSerializer(serializers.Serializer):
    """An operator closes a running task as failed, saying why."""

    reason = StrictCharField(max_length=TEXT_LIMIT, help_text="Why the task failed; kept as its `error`.")


class AgentFilterSerializer(serializers.Serializer):
    """Query parameters of the agent list (see TaskFilterSerializer)."""

    status = serializers.ChoiceField(choices=Agent.Status.choices, required=False)
    search = StrictCharField(required=False, allow_blank=True, max_length=100)


class ErrorSerializer(serializers.Serializer):
    """Body of 401, 403, 404, 405, 409, 415, 429, 500 and 503 answers."""

    detail = serializers.CharField()
    current_task = serializers.IntegerField(required=False, help_text="On a 409 claim: the task you are running.")


class ValidationErrorSerializer(serializers.Serializer):
    """Body of a 400: each field that was wrong, with messages saying how to fix it; or, for
    a body that could not be parsed, `detail`."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)
    detail = serializers.CharField(required=False, help_text="Malformed JSON: what the parser said.")

    class Meta:
        # Any other key is a field name with a list of messages.
        ref_name = "ValidationError"

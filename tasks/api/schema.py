"""OpenAPI details drf-spectacular cannot infer: how agent tokens are sent, and the rules
that span several fields of a request body."""
import inspect

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.views import SpectacularAPIView


class AgentTokenScheme(OpenApiAuthenticationExtension):
    """Documents AgentTokenAuthentication as an HTTP bearer scheme."""

    target_class = "tasks.api.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Agent token, e.g. `Authorization: Bearer fa_0123abcd4567.…` "
                           "(issue one with `manage.py issue_agent_token <agent>` or in the admin).",
        }


class ApiSchema(AutoSchema):
    """Every PATCH here must say what to change (an empty one is a 400), so its body is
    required; drf-spectacular marks a body required only when some field is.

    An operation's summary is the first line of its method's docstring, and its description
    the paragraphs after it, each as one line (Markdown)."""

    def _docstring_parts(self):
        method = getattr(self.view, getattr(self.view, "action", self.method.lower()), None)
        summary, _, rest = (inspect.getdoc(method) or "").partition("\n\n")
        return " ".join(summary.split()), "\n\n".join(" ".join(p.split()) for p in rest.split("\n\n") if p.strip())

    def get_summary(self):
        return self._docstring_parts()[0] or None

    def get_description(self):
        return self._docstring_parts()[1]

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body and self.method == "PATCH":
            body["required"] = True
        return body


class OperatorSchema(ApiSchema):
    """Operator endpoints accept only the session; the token authenticator is there just to
    answer agents with a clear 403, so it is left out of their documented security."""

    def get_auth(self):
        return [requirement for requirement in super().get_auth() if AgentTokenScheme.name not in requirement]


class _RuleSchema(OpenApiSerializerExtension):
    """A serializer's generated schema plus the rules its validate() enforces, so the schema
    refuses what the API refuses (an empty PATCH, `error` without status failed)."""

    rules = {}

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, **self.rules}


class TaskEditSchema(_RuleSchema):
    target_class = "tasks.api.serializers.TaskEditSerializer"
    rules = {"anyOf": [{"required": ["title"]}, {"required": ["description"]}]}


# `{"not": {}}` matches nothing: the property must be absent (OpenAPI 3.0 has no `false` schema).
_ABSENT = {"not": {}}


def _only(*values):
    """A property that must be one of `values`. The enum sits inside allOf so that
    drf-spectacular's enum hook leaves it here instead of merging it into a named component
    (it would give the three branches below one enum)."""
    return {"allOf": [{"enum": list(values)}]}


class TaskReportSchema(_RuleSchema):
    target_class = "tasks.api.serializers.TaskReportSerializer"
    rules = {"oneOf": [
        {   # still running: progress, or just "status": "running"
            "properties": {"status": _only("running"), "error": _ABSENT},
            "anyOf": [{"required": ["progress"]}, {"required": ["status"]}],
        },
        {   # done: progress is 100 or left out
            "properties": {"status": _only("succeeded"), "progress": _only(100), "error": _ABSENT},
            "required": ["status"],
        },
        {   # failed, saying why
            "properties": {"status": _only("failed")},
            "required": ["status", "error"],
        },
    ]}


class SchemaView(SpectacularAPIView):
    """/api/schema/: YAML, or JSON (`?format=json`, or asked for by Accept). A browser (its
    Accept names text/html) gets it as text it shows, text/plain for YAML and
    application/json for JSON, instead of an application/vnd.oai.openapi file to save."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 200 and "text/html" in request.headers.get("Accept", ""):
            yaml = response.accepted_renderer.format == "yaml"
            response.content_type = "text/plain; charset=utf-8" if yaml else "application/json"
        return response

"""OpenAPI details drf-spectacular cannot infer: how agent tokens are sent."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


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


class OperatorSchema(AutoSchema):
    """Operator endpoints accept only the session; the token authenticator is there just to
    answer agents with a clear 403, so it is left out of their documented security."""

    def get_auth(self):
        return [requirement for requirement in super().get_auth() if AgentTokenScheme.name not in requirement]

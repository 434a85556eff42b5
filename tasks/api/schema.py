"""OpenAPI details drf-spectacular cannot infer: how agent tokens are sent."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


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

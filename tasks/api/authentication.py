"""Bearer-token authentication for agents: `Authorization: Bearer fa_<prefix>.<secret>`."""
from rest_framework import authentication, exceptions

from realtime import actor

from .. import tokens


class AgentPrincipal:
    """request.user for an agent: authenticated, never staff, carries the agent."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, agent):
        self.agent = agent
        self.pk = self.id = None  # not a Django user; throttles key on the agent instead

    def __str__(self):
        return f"agent {self.agent.name}"

    def has_perm(self, perm, obj=None):
        return False


class AgentTokenAuthentication(authentication.BaseAuthentication):
    """Checks `Authorization: Bearer <token>` against the hashed agent tokens."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # no bearer token: let other authenticators try
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: send exactly `Authorization: Bearer <token>`."
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token contains characters a token never has.") from None
        row = tokens.authenticate(raw)
        if row is None:
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked agent token. Issue a new one with "
                "`manage.py issue_agent_token <agent name>` or in the admin (Agent tokens)."
            )
        # What this request changes is the agent's doing (realtime/actor.py; the middleware resets it).
        actor.set_current(actor.Actor(actor.AGENT, str(row.agent.pk), row.agent.name))
        return AgentPrincipal(row.agent), row

    def authenticate_header(self, request):
        return f'{self.keyword} realm="agents"'

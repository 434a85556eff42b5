"""Rate limits per agent and per operator (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]).

Counts live in Django's cache, which is per process unless CACHES points at a shared cache,
so with several server processes the effective limit is the rate times the process count."""
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .authentication import AgentPrincipal


class _LiveRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        # Read the rate on each request (not once at import) so settings overrides apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AgentRateThrottle(_LiveRateThrottle):
    """Scope "agent": one bucket per agent, whichever token it uses."""

    scope = "agent"

    def get_cache_key(self, request, view):
        if isinstance(request.user, AgentPrincipal):
            return self.cache_format % {"scope": self.scope, "ident": request.user.agent.pk}
        return None


class OperatorRateThrottle(_LiveRateThrottle):
    """Scope "operator": one bucket per logged-in user."""

    scope = "operator"

    def get_cache_key(self, request, view):
        user = request.user
        if user and user.is_authenticated and not isinstance(user, AgentPrincipal):
            return self.cache_format % {"scope": self.scope, "ident": user.pk}
        return None

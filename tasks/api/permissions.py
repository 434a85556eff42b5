"""Who may call what: agents act on their own work, staff operators manage the queue."""
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .authentication import AgentPrincipal


class IsAgent(BasePermission):
    """Only requests authenticated with an agent token."""

    message = "This endpoint is for agents: send `Authorization: Bearer <agent token>`."

    def has_permission(self, request, view):
        return isinstance(request.user, AgentPrincipal)


class IsOperator(BasePermission):
    """Active staff users (session login) with the model permission the method needs."""

    message = (
        "This endpoint is for operators: log in at /accounts/login/ as a staff user with "
        "permission on tasks (agent tokens are not accepted here)."
    )
    # Read needs view_*, writes need change_* (cancel, requeue, edit) or add_* (create).
    ACTIONS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, AgentPrincipal) or not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        action = "view" if request.method in SAFE_METHODS else getattr(view, "operator_action", None) or self.ACTIONS.get(request.method, "change")
        model = view.permission_model._meta
        return user.has_perm(f"{model.app_label}.{action}_{model.model_name}")

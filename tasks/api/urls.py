"""URLs under /api/ (included from dashboard_site/urls.py). docs/api.md describes each one."""
from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import views
from .schema import SchemaView

app_name = "api"

urlpatterns = [
    # Agents (Authorization: Bearer <token>)
    path("agent/register/", views.RegisterView.as_view(), name="agent-register"),
    path("agent/heartbeat/", views.HeartbeatView.as_view(), name="agent-heartbeat"),
    path("agent/me/", views.MeView.as_view(), name="agent-me"),
    path("agent/claim/", views.ClaimNextView.as_view(), name="agent-claim"),
    path("agent/tasks/<int:pk>/", views.AgentTaskView.as_view(), name="agent-task"),
    path("agent/tasks/<int:pk>/claim/", views.ClaimTaskView.as_view(), name="agent-task-claim"),
    # Operators (staff session)
    path("tasks/", views.TaskListView.as_view(), name="task-list"),
    path("tasks/<int:pk>/", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<int:pk>/cancel/", views.TaskCancelView.as_view(), name="task-cancel"),
    path("tasks/<int:pk>/requeue/", views.TaskRequeueView.as_view(), name="task-requeue"),
    path("tasks/<int:pk>/fail/", views.TaskFailView.as_view(), name="task-fail"),
    path("agents/", views.AgentListView.as_view(), name="agent-list"),
    path("agents/<int:pk>/", views.AgentDetailView.as_view(), name="agent-detail"),
    # The contract: OpenAPI 3 schema and an interactive page for it (Swagger UI from /static/,
    # its start-up script from docs/?script: nothing inline, nothing from another host)
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Anything else under /api/ gets a JSON 404 (not Django's HTML page), naming the fix.
    re_path(r"^[\s\S]*\Z", views.not_found, name="not-found"),
]

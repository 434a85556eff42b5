"""URLs under /api/ (included from dashboard_site/urls.py). docs/api.md describes each one."""
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import views
from .schema import SchemaView

app_name = "api"

# Agents (Authorization: Bearer <token>): /api/agent/...
agent_urls = [
    path("register/", views.RegisterView.as_view(), name="agent-register"),
    path("heartbeat/", views.HeartbeatView.as_view(), name="agent-heartbeat"),
    path("me/", views.MeView.as_view(), name="agent-me"),
    path("claim/", views.ClaimNextView.as_view(), name="agent-claim"),
    path("tasks/<int:pk>/", views.AgentTaskView.as_view(), name="agent-task"),
    path("tasks/<int:pk>/claim/", views.ClaimTaskView.as_view(), name="agent-task-claim"),
]

# One task, for operators: /api/tasks/<id>/...
task_urls = [
    path("", views.TaskDetailView.as_view(), name="task-detail"),
    path("cancel/", views.TaskCancelView.as_view(), name="task-cancel"),
    path("requeue/", views.TaskRequeueView.as_view(), name="task-requeue"),
    path("fail/", views.TaskFailView.as_view(), name="task-fail"),
]

urlpatterns = [
    path("agent/", include(agent_urls)),
    # Operators (staff session)
    path("tasks/", views.TaskListView.as_view(), name="task-list"),
    path("tasks/<int:pk>/", include(task_urls)),
    path("agents/", views.AgentListView.as_view(), name="agent-list"),
    path("agents/<int:pk>/", views.AgentDetailView.as_view(), name="agent-detail"),
    # The contract: OpenAPI 3 schema and an interactive page for it (Swagger UI from /static/,
    # its start-up script from docs/?script: nothing inline, nothing from another host)
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Anything else under /api/ gets a JSON 404 (not Django's HTML page), naming the fix.
    re_path(r"^[\s\S]*\Z", views.not_found, name="not-found"),
]

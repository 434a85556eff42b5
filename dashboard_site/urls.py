from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from tasks import pages, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("tasks/older/", views.older_tasks, name="older_tasks"),
    path("tasks/<int:pk>/", pages.task_detail, name="task_detail"),
    path("tasks/<int:pk>/timeline", pages.task_timeline, name="task_timeline"),
    path("tasks/<int:pk>/fail", pages.task_fail, name="task_fail"),
    path("agents/<int:pk>/", pages.agent_detail, name="agent_detail"),
    path("agents/<int:pk>/timeline", pages.agent_timeline, name="agent_timeline"),
    path("charts/throughput", pages.throughput, name="throughput"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("tasks.api.urls")),  # agent and operator API, schema at /api/schema/
]

# Errors Django answers itself are JSON under /api/ (dashboard_site/api_errors.py).
handler400 = "dashboard_site.api_errors.bad_request"
handler403 = "dashboard_site.api_errors.permission_denied"
handler404 = "dashboard_site.api_errors.page_not_found"
handler500 = "dashboard_site.api_errors.server_error"

"""Admin for tasks and agents: the operators' editing surface. Every save and action goes
through the sequenced model methods, so dashboards see each change. Every action needs the
model's change permission: a view-only staff user sees the lists and forms, and runs nothing."""
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Q
from django.utils.html import format_html
from django.utils.translation import ngettext

from realtime.sequencing import lock_stream

from .liveness import take_offline
from .models import Agent, Task

BADGE_STATUSES = {"queued", "running", "succeeded", "failed", "cancelled", "idle", "busy", "offline"}


class DashboardAdminMedia:
    """The badge and progress bar styles (static/admin/dashboard-admin.css): classes, not
    inline `style=` attributes, so the admin works under a Content-Security-Policy without
    'unsafe-inline'."""

    css = {"all": ("admin/dashboard-admin.css",)}


def status_badge(value, label):
    status = value if value in BADGE_STATUSES else "unknown"
    return format_html('<span class="dash-badge dash-badge-{}">{}</span>', status, label)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "badge", "current_task_link", "hostname", "last_heartbeat", "updated_at", "version")
    list_filter = ("status",)
    search_fields = ("name", "hostname")
    readonly_fields = ("last_heartbeat", "created_at", "updated_at", "version")
    actions = ("mark_offline",)
    Media = DashboardAdminMedia

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="current task")
    def current_task_link(self, obj):
        task = obj.current_task
        if task is None:
            return "-"
        return format_html('<a href="../task/{}/change/">{}</a>', task.pk, task.title)

    @admin.action(permissions=["change"], description="Mark selected agents offline (their running tasks follow the offline policy)")
    def mark_offline(self, request, queryset):
        with transaction.atomic():
            lock_stream()
            result = take_offline(dict(queryset.values_list("pk", "name")), f"marked offline by {request.user}")
        count = len(result["offline"])
        message = ngettext("%d agent marked offline.", "%d agents marked offline.", count) % count
        if result["requeued"] or result["failed"]:
            message += f" {len(result['requeued'])} running tasks requeued, {len(result['failed'])} failed."
        self.message_user(request, message)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "badge", "progress_bar", "agent", "updated_at", "version")
    list_filter = ("status", "agent")
    search_fields = ("title", "description", "error")
    list_select_related = ("agent",)
    readonly_fields = ("created_at", "updated_at", "started_at", "finished_at", "version")
    fieldsets = (
        (None, {"fields": ("title", "description", "status", "progress", "agent", "error")}),
        ("History", {"fields": ("created_at", "started_at", "finished_at", "updated_at", "version")}),
    )
    actions = ("cancel_tasks", "requeue_tasks")
    Media = DashboardAdminMedia

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, obj):
        return format_html(
            '<progress class="dash-progress" max="100" value="{}"></progress> {}%', obj.progress, obj.progress
        )

    @admin.action(permissions=["change"], description="Cancel selected tasks (queued or running)")
    def cancel_tasks(self, request, queryset):
        with transaction.atomic():
            lock_stream()  # writers queue on the stream lock; re-read the rows under it
            count = 0
            for task in queryset.filter(status__in=[Task.Status.QUEUED, Task.Status.RUNNING]):
                task.status = Task.Status.CANCELLED
                task.save()
                count += 1
        skipped = queryset.count() - count
        self.message_user(request, f"{count} cancelled." + (f" {skipped} already finished, left as they were." if skipped else ""))

    @admin.action(permissions=["change"], description="Requeue selected tasks (failed or cancelled)")
    def requeue_tasks(self, request, queryset):
        with transaction.atomic():
            lock_stream()
            count = 0
            for task in queryset.filter(Q(status=Task.Status.FAILED) | Q(status=Task.Status.CANCELLED)):
                task.status, task.progress, task.agent, task.error = Task.Status.QUEUED, 0, None, ""
                task.save()
                count += 1
        skipped = queryset.count() - count
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, f"{count} requeued." + (f" {skipped} not failed or cancelled, left as they were." if skipped else ""), level)


# Agent API tokens (tasks/tokens.py) ---------------------------------------------------------

from . import tokens as agent_tokens  # noqa: E402
from .models import AgentToken  # noqa: E402


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    """Issue tokens (the secret is shown once, in a message after saving) and revoke them."""

    list_display = ("prefix", "agent", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "agent")
    search_fields = ("prefix", "name", "agent__name")
    list_select_related = ("agent",)
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_tokens",)
    Media = DashboardAdminMedia

    def get_fields(self, request, obj=None):
        if obj is None:  # adding: choose the agent; the secret is generated
            return ("agent", "name")
        return ("agent", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        # A token never moves to another agent: issue a new one instead.
        return self.readonly_fields + (("agent",) if obj is not None else ())

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        secret = agent_tokens.fill_new_token(obj)
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            format_html(
                "Token for agent {}: <code class=\"dash-secret\">{}</code> Copy it now: it is not "
                "stored and cannot be shown again. Agents send it as <code>Authorization: Bearer &lt;token&gt;</code>.",
                obj.agent.name, secret,
            ),
            messages.WARNING,
        )

    @admin.action(permissions=["change"], description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        count = agent_tokens.revoke(queryset)
        self.message_user(request, ngettext("%d token revoked.", "%d tokens revoked.", count) % count)

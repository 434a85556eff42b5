"""Admin for tasks and agents: the operators' editing surface. Every save and action goes
through tasks/domain.py (the rules) and the sequenced models, so dashboards see each change.
Every action needs the model's change permission: a view-only staff user sees the lists and
forms, and runs nothing.

The task change form refuses what the rules refuse (a running task with no agent, an agent
with two running tasks, a status change no operator may make) and a stale edit: it carries
the version it was loaded at, and Django runs the whole POST (validation and save) in one
transaction, in which the form takes the stream lock before it checks. So an agent's claim
or report that lands while the form is open is never overwritten: the form says "reload".
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.translation import ngettext

from realtime.sequencing import lock_stream

from . import domain
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


def _report(modeladmin, request, outcome, verb, skipped_why):
    count = len(outcome.done)
    message = f"{count} {verb}."
    if outcome.skipped:
        message += f" {len(outcome.skipped)} {skipped_why}, left as they were."
    modeladmin.message_user(request, message, messages.SUCCESS if count else messages.WARNING)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "badge", "current_task_link", "hostname", "last_heartbeat", "updated_at", "version")
    list_filter = ("status",)
    search_fields = ("name", "hostname")
    readonly_fields = ("last_heartbeat", "created_at", "updated_at", "version")
    actions = ("mark_offline",)
    Media = DashboardAdminMedia

    def get_queryset(self, request):
        return domain.with_current_task(super().get_queryset(request))

    @admin.display(description="status", ordering="status")
    def badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="current task")
    def current_task_link(self, obj):
        task_id = getattr(obj, "running_task_id", None)
        if task_id is None:
            return "-"
        task = Task.objects.only("title").get(pk=task_id)
        return format_html('<a href="../task/{}/change/">{}</a>', task.pk, task.title)

    @admin.action(permissions=["change"], description="Mark selected agents offline (their running tasks follow the offline policy)")
    def mark_offline(self, request, queryset):
        result = domain.take_agents_offline(agents=dict(queryset.values_list("pk", "name")),
                                            reason=f"marked offline by {request.user}")
        count = len(result["offline"])
        message = ngettext("%d agent marked offline.", "%d agents marked offline.", count) % count
        if result["requeued"] or result["failed"]:
            message += f" {len(result['requeued'])} running tasks requeued, {len(result['failed'])} failed."
        self.message_user(request, message)


class TaskForm(forms.ModelForm):
    """The task change form: the rules and the version check run under the stream lock."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Task
        fields = ("title", "description", "status", "progress", "agent", "error")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["loaded_version"].initial = self.instance.version

    def clean(self):
        values = super().clean()
        if self.instance.pk is None or self.errors:
            return values
        lock_stream()  # held until the change view's transaction ends, through the save
        current = Task.objects.select_related("agent").get(pk=self.instance.pk)
        self.previous_agent_id = current.agent_id
        try:
            domain.check_edit(current, expected_version=values.get("loaded_version"), values=values)
        except domain.StaleEdit as exc:
            raise ValidationError(exc.message, code="stale") from None
        except domain.DomainError as exc:
            if exc.field in self.fields:
                self.add_error(exc.field, exc.message)
            else:
                raise ValidationError(exc.message) from None
        return values


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    list_display = ("title", "badge", "progress_bar", "agent", "updated_at", "version")
    list_filter = ("status", "agent")
    search_fields = ("title", "description", "error")
    list_select_related = ("agent",)
    readonly_fields = ("created_at", "updated_at", "started_at", "finished_at", "version")
    fieldsets = (
        (None, {"fields": ("title", "description", "status", "progress", "agent", "error", "loaded_version")}),
        ("History", {"fields": ("created_at", "started_at", "finished_at", "updated_at", "version")}),
    )
    actions = ("cancel_tasks", "requeue_tasks")
    Media = DashboardAdminMedia

    def save_model(self, request, obj, form, change):
        if change:
            domain.save_edit(obj, previous_agent_id=getattr(form, "previous_agent_id", None))
        else:
            super().save_model(request, obj, form, change)

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
        outcome = domain.cancel_many(task_ids=queryset.values_list("pk", flat=True))
        _report(self, request, outcome, "cancelled", "already finished")

    @admin.action(permissions=["change"], description="Requeue selected tasks (failed or cancelled)")
    def requeue_tasks(self, request, queryset):
        outcome = domain.requeue_many(task_ids=queryset.values_list("pk", flat=True))
        _report(self, request, outcome, "requeued", "not failed or cancelled")


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

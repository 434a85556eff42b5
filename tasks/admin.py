"""Admin for tasks and agents: the operators' editing surface. Every save and action goes
through tasks/domain.py (the rules) and the sequenced models, so dashboards see each change.
Every action needs the model's change permission: a view-only staff user sees the lists and
forms, and runs nothing.

The task and agent forms refuse what the rules refuse (a running task with no agent, an agent
with two running tasks, a status change no operator may make) and a conflicting edit. Each
field carries the value it was loaded with (Django's hidden initial inputs), so the rules can
tell what the operator changed from what changed meanwhile: an agent's progress reports and
heartbeats, which land every second or two, are kept and block nothing; a field the operator
changed that was also changed meanwhile is refused with "reload". Django runs the whole POST
(validation and save) in one transaction, in which the form takes the stream lock before it
reads the row and checks, so nothing changes between the check and the save.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.translation import ngettext

from realtime.sequencing import lock_stream

from . import domain, lifecycle, selectors
from .models import Agent, Task

BADGE_STATUSES = {*lifecycle.VALUES, *Agent.Status.values}  # a status with no colour of its own looks neutral


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


class OperatorForm(forms.ModelForm):
    """Base of the task and agent forms: the rules (tasks/domain.py) run in clean(), under the
    stream lock, on the values the form was loaded with, the operator's changes and the row as
    it is now. A refused edit leaves the fields the rules judge as they are, so the model's
    clean() (the same rules) does not report the refusal a second time."""

    edit_fields = ()
    judged_fields = ()  # the fields the model's clean() checks
    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:  # a new row has nothing to be changed meanwhile
            self.fields["loaded_version"].initial = self.instance.version
            for name in self.edit_fields:
                if name in self.fields:  # a view-only user's form has none
                    self.fields[name].show_hidden_initial = True  # the value it was loaded with
        self.current, self.edit = None, {}

    def loaded_values(self):
        """{name: value} the form was loaded with, or None when the POST does not say."""
        loaded = {}
        for name in self.edit_fields:
            key, field = self.add_initial_prefix(name), self.fields[name]
            if key not in self.data:
                return None
            raw = field.hidden_widget().value_from_datadict(self.data, self.files, key)
            try:
                loaded[name] = field.to_python(raw)
            except ValidationError:  # e.g. an agent deleted since: compare its id
                loaded[name] = raw
        return loaded

    def clean(self):
        values = super().clean()
        if self.errors:
            return values
        lock_stream()  # held until the change view's transaction ends, through the save
        entered = {name: values[name] for name in self.edit_fields if name in values}
        try:
            self.cleaned_data.update(self.apply_rules(entered, values.get("loaded_version")))
        except domain.StaleEdit as exc:
            self._leave_as_it_is()
            raise ValidationError(exc.message, code="stale") from None
        except domain.DomainError as exc:
            self._leave_as_it_is()
            if exc.field not in self.fields:
                raise ValidationError(exc.message) from None
            self.add_error(exc.field, exc.message)
        return self.cleaned_data

    def check_edit(self, prepare, values, expected_version):
        """Read the row under the lock and run `prepare` (a domain.prepare_*_edit) on it."""
        model = self._meta.model
        self.current = model.objects.filter(pk=self.instance.pk).first()
        if self.current is None:
            raise domain.NotFound(f"This {model._meta.verbose_name} was deleted while you were editing.")
        loaded = self.loaded_values()
        changed = None if loaded is None else [name for name in self.changed_data if name in values]
        self.edit = prepare(self.current, values=values, loaded=loaded, changed=changed, expected_version=expected_version)
        return {name: self.edit.get(name, getattr(self.current, name)) for name in values}

    def _leave_as_it_is(self):
        for name in self.judged_fields:
            if name in self.cleaned_data:
                self.cleaned_data[name] = getattr(self.instance, name)


class AgentForm(OperatorForm):
    edit_fields = domain.AGENT_EDIT_FIELDS

    class Meta:
        model = Agent
        fields = ("name", "status", "hostname")

    def apply_rules(self, values, expected_version):
        if self.instance.pk is None:
            return domain.prepare_new_agent(values=values)
        return self.check_edit(domain.prepare_agent_edit, values, expected_version)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentForm
    list_display = ("name", "badge", "current_task_link", "hostname", "last_heartbeat", "updated_at", "version")
    list_filter = ("status",)
    search_fields = ("name", "hostname")
    readonly_fields = ("last_heartbeat", "created_at", "updated_at", "version")
    actions = ("mark_offline",)
    Media = DashboardAdminMedia

    def get_queryset(self, request):
        return selectors.with_current_task(super().get_queryset(request))

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

    def save_model(self, request, obj, form, change):
        if change:
            domain.save_agent_edit(agent=form.current, edit=form.edit, reason=f"marked offline by {request.user}")
            obj.refresh_from_db()
        else:
            super().save_model(request, obj, form, change)

    @admin.action(permissions=["change"], description="Mark selected agents offline (their running tasks follow the offline policy)")
    def mark_offline(self, request, queryset):
        result = domain.take_agents_offline(agents=dict(queryset.values_list("pk", "name")),
                                            reason=f"marked offline by {request.user}")
        count = len(result["offline"])
        message = ngettext("%d agent marked offline.", "%d agents marked offline.", count) % count
        if result["requeued"] or result["failed"]:
            message += f" {len(result['requeued'])} running tasks requeued, {len(result['failed'])} failed."
        self.message_user(request, message)


class TaskForm(OperatorForm):
    """The task form: the rules, the merge with what changed meanwhile and what a new status
    brings (100% when it succeeds) run under the stream lock."""

    edit_fields = domain.TASK_EDIT_FIELDS
    judged_fields = ("status", "progress", "agent")

    class Meta:
        model = Task
        fields = ("title", "description", "status", "progress", "agent", "error")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.status == Task.Status.RUNNING and "progress" in self.fields:
            self.fields["progress"].help_text = (
                "Percent done, 0 to 100. Its agent reports it while it runs: left as it is, the "
                "latest report is kept (and it becomes 100 when you mark the task succeeded)."
            )

    def apply_rules(self, values, expected_version):
        if self.instance.pk is None:
            return domain.prepare_new_task(values=values, changed=[n for n in self.changed_data if n in values])
        return self.check_edit(domain.prepare_task_edit, values, expected_version)


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
            domain.save_task_edit(task=form.current, edit=form.edit)
            obj.refresh_from_db()
        else:
            domain.save_new_task(task=obj)

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

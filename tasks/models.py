"""Tasks and the agents that run them. Every write is sequenced (realtime/sequencing.py)."""
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from realtime.sequencing import SequencedModel

from . import lifecycle
from .errors import InvalidChange
from .search import Folded, fold

# Long text is bounded where it enters (forms, the admin and the API validate against it);
# on the wire a row carries an excerpt whatever the database holds (realtime/rows.py).
TEXT_LIMIT = 10_000


class Agent(SequencedModel):
    class Status(models.TextChoices):
        IDLE = "idle", "Idle"
        BUSY = "busy", "Busy"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IDLE, db_index=True)
    hostname = models.CharField(max_length=255, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta(SequencedModel.Meta):
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["idle", "busy", "offline"]), name="agent_status_valid"
            ),
        ]

    def __str__(self):
        return self.name


class Task(SequencedModel):
    # The statuses and their rules are declared in tasks/lifecycle.py; Task.Status.RUNNING etc.
    Status = models.TextChoices("Status", [(s.value.upper(), (s.value, s.label)) for s in lifecycle.STATUSES])

    FINISHED = lifecycle.FINISHED
    derived_fields = ("started_at", "finished_at", "title_folded")

    title = models.CharField(max_length=200)
    # The title as a view's search reads it (tasks/search.py), kept by every write path.
    title_folded = models.CharField(max_length=200, editable=False, default="")
    description = models.TextField(blank=True, validators=[MaxLengthValidator(TEXT_LIMIT)])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Percent done, 0 to 100.",
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks", db_index=False
    )
    error = models.TextField(
        blank=True, validators=[MaxLengthValidator(TEXT_LIMIT)],
        help_text=f"Why the task failed (at most {TEXT_LIMIT:,} characters).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(SequencedModel.Meta):
        ordering = ["-created_at", "-id"]
        # A dashboard's view reads the newest tasks of a status or an agent (tasks/windows.py);
        # each index also serves the plain status or agent lookups its first column names.
        indexes = [
            models.Index(fields=["status", "id"], name="task_status_id"),
            models.Index(fields=["agent", "id"], name="task_agent_id"),
            # An agent's tasks of some statuses: measured at 1,000,000 tasks on SQLite, a view
            # of one agent's failed tasks read in 40 ms without it, 10 ms with it.
            models.Index(fields=["agent", "status", "id"], name="task_agent_status_id"),
            # Retention finds the oldest finished tasks (tasks/retention.py).
            models.Index(fields=["finished_at"], name="task_finished_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100), name="task_progress_0_100"
            ),
            models.CheckConstraint(condition=Q(status__in=list(lifecycle.VALUES)), name="task_status_valid"),
            models.CheckConstraint(
                condition=~Q(status__in=list(lifecycle.STARTED)) | Q(started_at__isnull=False),
                name="task_running_has_started_at",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=list(lifecycle.FINISHED)) | Q(finished_at__isnull=False),
                name="task_finished_has_finished_at",
            ),
        ]

    def __str__(self):
        return self.title

    def clean(self):
        """The rules a row keeps by itself (tasks/lifecycle.py check_row)."""
        try:
            lifecycle.check_row(status=self.status, progress=self.progress, agent_id=self.agent_id)
        except InvalidChange as exc:
            raise ValidationError({exc.field: exc.message}) from None

    @classmethod
    def derived_updates(cls, values, now):
        derived = {}
        if "title" in values:
            title = values["title"]
            derived["title_folded"] = fold(title) if isinstance(title, str) else Folded(title)
        return {**derived, **cls._timestamps(values, now)}

    @classmethod
    def _timestamps(cls, values, now):
        """lifecycle.timestamps() as QuerySet.update() values, for rows in any state."""
        spec = lifecycle.BY_VALUE.get(values.get("status"))
        if spec is None:
            return {}
        keep_or_now = lambda name: Coalesce(F(name), Value(now))  # noqa: E731
        started = keep_or_now("started_at") if spec.started else None
        updates = {"finished_at": keep_or_now("finished_at") if spec.finished else None}
        if not spec.finished:  # a finished task keeps the start it had
            updates["started_at"] = started
        return updates

    def prepare_for_write(self, now):
        """Keep the timestamps consistent with the status, and the folded title with the
        title, whoever changed them."""
        super().prepare_for_write(now)
        self.title_folded = fold(self.title or "")
        self.started_at, self.finished_at = lifecycle.timestamps(self.status, self.started_at, self.finished_at, now)


# Agent API credentials and the liveness lease (docs/api.md) -------------------------------


class AgentToken(models.Model):
    """A bearer credential for one agent. Only a hash of the secret is stored (tasks/tokens.py)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What this token is for, e.g. the host it lives on.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="The public start of the token, used to find it.")
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.prefix}… ({self.agent})"

    @property
    def is_active(self):
        return self.revoked_at is None


class SweepLease(models.Model):
    """When a periodic job last ran; a conditional UPDATE on it elects one runner per interval."""

    name = models.CharField(max_length=50, primary_key=True)
    last_run = models.DateTimeField()

    def __str__(self):
        return f"{self.name} last ran {self.last_run.isoformat()}"

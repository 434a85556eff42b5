from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks and agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, pre_delete

        from realtime.sequencing import sequence_deletion

        from . import signals
        from .models import Agent, Task

        pre_delete.connect(signals.agent_deleting, sender=Agent, dispatch_uid="tasks.agent_deleting")
        post_delete.connect(signals.task_deleted, sender=Task, dispatch_uid="tasks.task_deleted")
        for model in (Task, Agent):
            pre_delete.connect(sequence_deletion, sender=model, dispatch_uid=f"tasks.sequence_deletion.{model.__name__}")

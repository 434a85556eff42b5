from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks and agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Declare the streamed entities and wire the receivers (handlers: tasks/signals.py)."""
        from django.db.models.signals import post_delete, pre_delete

        from realtime import registry

        from . import signals
        from .models import Agent, Task
        from .rows import agent_row, task_row
        from .windows import TaskViews

        registry.register(Task, entity="task", serializer=task_row, view_permission="tasks.view_task",
                          history=True, status_field="status", views=TaskViews())
        registry.register(Agent, entity="agent", serializer=agent_row, history=True, status_field="status")
        pre_delete.connect(signals.agent_deleting, sender=Agent, dispatch_uid="tasks.agent_deleting")
        post_delete.connect(signals.task_deleted, sender=Task, dispatch_uid="tasks.task_deleted")

"""Signal receivers wired in TasksConfig.ready()."""


def detach_agent_tasks(sender, instance, using, **kwargs):
    """Before an agent is deleted, clear it from its tasks through the sequenced path.

    The ORM's own SET_NULL would update those tasks without numbering the change.
    """
    from .models import Task

    Task.objects.using(using).filter(agent_id=instance.pk).update(agent=None)

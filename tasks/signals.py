"""Signal receivers wired in TasksConfig.ready(); the rules they apply live in tasks/domain.py."""


def agent_deleting(sender, instance, using, **kwargs):
    """pre_delete of an agent: its running task follows the offline policy, the rest forget it."""
    from . import domain

    domain.before_agent_deleted(instance)


def task_deleted(sender, instance, using, **kwargs):
    """post_delete of a task: an agent that was running it becomes idle."""
    from . import domain

    domain.after_task_deleted(instance)

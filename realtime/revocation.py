"""Signal receivers that push access changes to every process (wired in RealtimeConfig.ready).

Each one only says what changed; the hub of every process then closes the sockets whose
session ended, or re-checks the sockets of the users concerned (realtime/access.py decides).
"""
from .access import announce, fingerprint


def logged_out(sender, request, user, **kwargs):
    """user_logged_out: that session ends now, whatever the session engine."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        announce(ended=[fingerprint(key)])


def session_deleted(sender, instance, using, **kwargs):
    """post_delete of a database session: logout, `clearsessions`, a key cycled at login."""
    announce(using, ended=[fingerprint(instance.session_key)])


def user_changed(sender, instance, using="default", **kwargs):
    """post_save/post_delete of a user: deactivated, deleted, superuser status changed."""
    announce(using, users=[instance.pk])


def membership_changed(sender, instance, action, reverse, model, pk_set, using, **kwargs):
    """m2m_changed of a user's groups or permissions (either side of the relation)."""
    from django.contrib.auth import get_user_model

    if not action.startswith("post_"):
        return
    if isinstance(instance, get_user_model()):
        announce(using, users=[instance.pk])
    elif model is get_user_model() and pk_set:
        announce(using, users=list(pk_set))
    else:  # a group's permissions, or a group emptied: re-check everyone (rare)
        announce(using, all=True)


def grants_changed(sender, using="default", **kwargs):
    """post_save/post_delete of a group or permission: re-check everyone (rare)."""
    announce(using, all=True)


def connect():
    """Wire the receivers; called once from RealtimeConfig.ready()."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from .access import _engine

    user_model = get_user_model()
    user_logged_out.connect(logged_out, dispatch_uid="realtime.access.logged_out")
    store = _engine().SessionStore
    if hasattr(store, "get_model_class"):
        post_delete.connect(session_deleted, sender=store.get_model_class(), dispatch_uid="realtime.access.session")
    for signal in (post_save, post_delete):
        signal.connect(user_changed, sender=user_model, dispatch_uid=f"realtime.access.user.{signal is post_save}")
        for model in (Group, Permission):
            signal.connect(grants_changed, sender=model, dispatch_uid=f"realtime.access.{model.__name__}.{signal is post_save}")
    m2m_changed.connect(membership_changed, sender=user_model.groups.through, dispatch_uid="realtime.access.groups")
    m2m_changed.connect(membership_changed, sender=user_model.user_permissions.through, dispatch_uid="realtime.access.perms")
    m2m_changed.connect(membership_changed, sender=Group.permissions.through, dispatch_uid="realtime.access.group_perms")

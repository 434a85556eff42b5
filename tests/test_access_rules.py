"""check_sessions() decides as Django's ModelBackend does: for every way a user can hold (or
lack) the view permissions, its verdict matches `user.has_perms(...)`, read fresh."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from realtime import registry
from realtime.access import check_sessions
from realtime.protocol import CLOSE_FORBIDDEN

pytestmark = pytest.mark.django_db


def permission(name):
    app_label, codename = name.split(".")
    return Permission.objects.get(codename=codename, content_type__app_label=app_label)


def session_for(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_every_way_to_hold_the_view_permissions_is_judged_as_model_backend_judges_it(monkeypatch):
    # Two permissions, as a project that streams two entities with their own would declare:
    # the mixed cases hold one directly and the other through a group.
    needed = ["tasks.view_task", "tasks.view_agent"]
    monkeypatch.setattr(registry, "view_permissions", lambda: needed)
    User = get_user_model()
    all_group = Group.objects.create(name="all")
    all_group.permissions.add(*[permission(p) for p in needed])
    first_group = Group.objects.create(name="first only")
    first_group.permissions.add(permission(needed[0]))
    unrelated = Group.objects.create(name="unrelated")
    unrelated.permissions.add(Permission.objects.get(codename="change_user"))

    def user(name, superuser=False, active=True, direct=(), groups=()):
        made = User.objects.create_user(name, password=None, is_superuser=superuser, is_staff=superuser)
        made.user_permissions.add(*[permission(p) for p in direct])
        made.groups.add(*groups)
        keys = session_for(made)
        if not active:  # signed in, then deactivated
            User.objects.filter(pk=made.pk).update(is_active=False)
        return made, keys

    cases = [
        user("superuser", superuser=True),
        user("inactive superuser", superuser=True, active=False),
        user("direct", direct=needed),
        user("by group", groups=[all_group]),
        user("mixed", direct=needed[1:], groups=[first_group]),
        user("half", groups=[first_group]),
        user("unrelated", groups=[unrelated]),
        user("nothing"),
        user("inactive with all", groups=[all_group], active=False),
        user("twice", direct=needed, groups=[all_group]),
    ]
    verdicts = check_sessions([key for _, key in cases])
    judged = {}
    for made, key in cases:
        fresh = User.objects.get(pk=made.pk)
        expected = fresh.is_active and fresh.has_perms(needed)
        judged[made.username] = verdicts[key].code is None
        assert judged[made.username] == expected, made.username
        if fresh.is_active and not expected:
            assert verdicts[key].code == CLOSE_FORBIDDEN
    # The table itself holds both answers, so it can fail either way.
    assert {name for name, ok in judged.items() if ok} == {"superuser", "direct", "by group", "mixed", "twice"}

"""The user admin, with an action that closes a user's open dashboards on every process
(like ActionCable's remote disconnect): their sockets close with 4510 and stay closed until
the person reloads. To end their access for good, deactivate them or remove the permission;
that closes the dashboards too (realtime/access.py)."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import ngettext

from .access import announce
from .protocol import CLOSE_BY_OPERATOR

User = get_user_model()


class DashboardUserAdmin(UserAdmin):
    actions = ("close_dashboards",)

    @admin.action(description="Close the selected users' open dashboards", permissions=["change"])
    def close_dashboards(self, request, queryset):
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        announce(close_users=ids, code=CLOSE_BY_OPERATOR)
        self.message_user(request, ngettext(
            "The open dashboards of %d user are being closed on every server.",
            "The open dashboards of %d users are being closed on every server.", len(ids)) % len(ids))


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, DashboardUserAdmin)

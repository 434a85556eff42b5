"""Create the local admin login for the embedded default, printing its password once."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser for local use (only if none exists) and print its password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "A superuser already exists; its password was printed when it was created. "
                f"To set a new one: python manage.py changepassword {username}"
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username, f"{username}@localhost", password)
        line = "=" * 60
        self.stdout.write(self.style.SUCCESS(
            f"{line}\n  Local login (shown once):  {username} / {password}\n{line}"
        ))

"""Issue an API token for an agent and print it once (only its hash is stored)."""
from django.core.management.base import BaseCommand, CommandError

from tasks import tokens
from tasks.models import Agent


class Command(BaseCommand):
    help = "Issue a bearer token for the agent NAME and print it. It is shown only this once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the agent's name")
        parser.add_argument("--create", action="store_true", help="create the agent if it does not exist (it starts offline)")
        parser.add_argument("--label", default="", help="what the token is for, e.g. the host it will live on")
        parser.add_argument("--quiet", action="store_true", help="print only the token (for scripts)")

    def handle(self, *args, name, create, label, quiet, **options):
        try:
            row, secret = tokens.issue_for_name(name, create=create, label=label)
        except Agent.DoesNotExist:
            raise CommandError(f"No agent named {name!r}. Add --create to create it, or check the name in the admin.") from None
        if quiet:
            self.stdout.write(secret)
            return
        self.stdout.write(self.style.SUCCESS(f"Token {row.prefix} for agent {row.agent.name} (id {row.agent.pk}):"))
        self.stdout.write(secret)
        self.stdout.write("Store it now; it cannot be shown again. Agents send it as `Authorization: Bearer <token>`.")

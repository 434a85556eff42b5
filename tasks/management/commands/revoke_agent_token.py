"""Revoke agent tokens, by prefix or every token of an agent."""
from django.core.management.base import BaseCommand, CommandError

from tasks import tokens as agent_tokens
from tasks.models import AgentToken


class Command(BaseCommand):
    help = "Revoke agent tokens: give token prefixes (or whole tokens), or --agent NAME for all of its tokens."

    def add_arguments(self, parser):
        parser.add_argument("tokens", nargs="*", help="token prefixes as shown in the admin, or whole tokens")
        parser.add_argument("--agent", help="revoke every token of the agent with this name")

    def handle(self, *args, tokens, agent, **options):
        if not tokens and not agent:
            raise CommandError("Say what to revoke: token prefixes, or --agent NAME.")
        prefixes = [agent_tokens.parse_prefix(t) or t for t in tokens]
        queryset = AgentToken.objects.none()
        if prefixes:
            queryset = AgentToken.objects.filter(prefix__in=prefixes)
            missing = set(prefixes) - set(queryset.values_list("prefix", flat=True))
            if missing:
                raise CommandError(f"No token with prefix {', '.join(sorted(missing))}; nothing was revoked.")
        if agent:
            if not AgentToken.objects.filter(agent__name=agent).exists():
                raise CommandError(f"Agent {agent!r} has no tokens (check the name); nothing was revoked.")
            queryset = queryset | AgentToken.objects.filter(agent__name=agent)
        count = agent_tokens.revoke(queryset)
        self.stdout.write(self.style.SUCCESS(f"Revoked {count} token(s)."))

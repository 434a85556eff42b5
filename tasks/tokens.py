"""Agent tokens: issue, check and revoke. The secret is shown once; only its SHA-256 is stored.

A token looks like `fa_<prefix>.<secret>`. The prefix is public and finds the row; the whole
token is hashed and compared in constant time. A random 256-bit secret needs no slow hash
(unlike a password there is nothing to guess), so checking a token costs one indexed lookup.
"""
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from .models import Agent, AgentToken

TOKEN_START = "fa_"
# last_used_at is a hint for operators, not an audit log: write it at most this often so
# a busy agent does not turn every request into a write.
LAST_USED_PRECISION = timedelta(seconds=60)


def digest(token):
    """SHA-256 hex digest of a whole token string."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(agent, name=""):
    """Create a token for `agent`; return (the AgentToken row, the secret to show once)."""
    row = AgentToken(agent=agent, name=name)
    token = fill_new_token(row)
    row.save()
    return row, token


def fill_new_token(row):
    """Give an unsaved AgentToken (e.g. from the admin's add form) its secret; return the secret."""
    prefix = secrets.token_hex(6)
    while AgentToken.objects.filter(prefix=prefix).exists():  # 48 bits: practically never
        prefix = secrets.token_hex(6)
    token = f"{TOKEN_START}{prefix}.{secrets.token_urlsafe(32)}"
    row.prefix, row.key_hash = prefix, digest(token)
    return token


def parse_prefix(token):
    """The lookup prefix of a token string, or None when it is not shaped like one."""
    if not token.startswith(TOKEN_START) or "." not in token:
        return None
    prefix = token[len(TOKEN_START):].split(".", 1)[0]
    return prefix if 0 < len(prefix) <= 16 else None


def authenticate(token):
    """The active AgentToken (with its agent) for a token string, or None."""
    prefix = parse_prefix(token)
    if prefix is None:
        return None
    try:  # the prefix is unique; get() builds no ORDER BY
        row = AgentToken.objects.select_related("agent").get(prefix=prefix, revoked_at__isnull=True)
    except AgentToken.DoesNotExist:
        return None
    if not hmac.compare_digest(row.key_hash, digest(token)):
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        AgentToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def revoke(queryset):
    """Revoke every active token in `queryset`; return how many were revoked."""
    return queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def issue_for_name(name, create=False, hostname="", label=""):
    """Issue a token for the agent called `name` (created if `create`); return (row, secret).

    Raises Agent.DoesNotExist when the agent is unknown and `create` is false."""
    if create:
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            agent = Agent(name=name, hostname=hostname, status=Agent.Status.OFFLINE)
            agent.save()
    else:
        agent = Agent.objects.get(name=name)
    return issue(agent, label)

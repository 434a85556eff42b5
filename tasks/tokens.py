"""Agent tokens: issue, check and revoke. The secret is shown once; only its SHA-256 is stored.

A token looks like `fa_<prefix>.<secret>`. The prefix is public and finds the row; the whole
token is hashed and compared in constant time. A random 256-bit secret needs no slow hash
(unlike a password there is nothing to guess), so checking a token costs one indexed lookup.

A process keeps the tokens it has checked for API_TOKEN_CACHE_SECONDS (5): an agent reports
every second or two, and each report would otherwise read its token again. A revoked token
therefore stops working within that time on every process, and at once on the process that
revoked it; a token is never trusted longer than that after it was read.
"""
import hashlib
import hmac
import secrets
import threading
import time
from datetime import timedelta

from django.conf import settings
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


class CheckedTokens:
    """Tokens this process has checked lately: whole-token digest -> (row, checked at)."""

    MAX = 10_000  # entries; past it the oldest half is forgotten

    def __init__(self):
        self._rows = {}
        self._lock = threading.Lock()

    def get(self, key):
        found = self._rows.get(key)
        if found is None or time.monotonic() - found[1] >= settings.API_TOKEN_CACHE_SECONDS:
            return None
        return found[0]

    def put(self, key, row):
        if settings.API_TOKEN_CACHE_SECONDS <= 0:
            return
        with self._lock:
            if len(self._rows) >= self.MAX:
                for old in list(self._rows)[: self.MAX // 2]:
                    self._rows.pop(old, None)
            self._rows[key] = (row, time.monotonic())

    def forget(self, prefixes=None):
        """Forget the tokens with these prefixes (all when None)."""
        with self._lock:
            if prefixes is None:
                self._rows.clear()
            else:
                for key, (row, _) in list(self._rows.items()):
                    if row.prefix in prefixes:
                        self._rows.pop(key, None)


checked = CheckedTokens()


def authenticate(token):
    """The active AgentToken (with its agent) for a token string, or None."""
    prefix = parse_prefix(token)
    if prefix is None:
        return None
    key = digest(token)
    row = checked.get(key)
    if row is None:
        try:  # the prefix is unique; get() builds no ORDER BY
            row = AgentToken.objects.select_related("agent").get(prefix=prefix, revoked_at__isnull=True)
        except AgentToken.DoesNotExist:
            return None
        if not hmac.compare_digest(row.key_hash, key):
            return None
        checked.put(key, row)
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        AgentToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def revoke(queryset):
    """Revoke every active token in `queryset`; return how many were revoked. This process
    forgets them at once; the others within API_TOKEN_CACHE_SECONDS."""
    active = queryset.filter(revoked_at__isnull=True)
    prefixes = set(active.values_list("prefix", flat=True))
    count = active.update(revoked_at=timezone.now())
    checked.forget(prefixes)
    return count


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

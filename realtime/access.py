"""Who may watch the stream, checked when a socket connects and for as long as it stays open.

A socket belongs to a Django session. Its access ends when the session ends (logout in any
tab, expiry, deletion), when the user is deactivated or deleted, or when they lose the view
permission; every open socket of that session or user, on every process, is then closed:
4501 (sign in again) or 4503 (no longer allowed). How fast:

- logout, session deletion, and changes to users, groups and permissions made through the
  ORM or the admin are pushed to every process at once (`send_control`): closed within
  about a second;
- a session's expiry time is known to the socket: closed when it passes (checked every
  heartbeat tick, at most a second late);
- anything else (raw SQL, `QuerySet.update()` on users, a change made in another process on
  the in-process layer): every socket's access is checked again every
  REALTIME_AUTH_RECHECK_INTERVAL seconds (5 by default), in one batch of queries per process.

`check_sessions()` is the one place that decides, for a connect, a `subscribe`, a re-check
and a pushed change alike. It mirrors `django.contrib.auth.get_user` (backend, active user,
session hash with the fallback keys) without its side effects, and reads many sessions and
users in a few queries.
"""
import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_backends, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.db import connections, transaction
from django.http import parse_cookie
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import registry
from .protocol import CLOSE_FORBIDDEN, CLOSE_NOT_SIGNED_IN



@dataclass(frozen=True)
class Access:
    """The verdict for one session: `code` is None when the socket may watch, else its close code."""

    code: int | None
    user_id: object = None
    username: str = ""
    expires_at: float | None = None  # wall-clock seconds when the session expires, if known
    reason: str = ""


def session_key(scope):
    """The session cookie's value from the handshake headers, or None."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
    return None


def fingerprint(key):
    """What travels between processes instead of a session key (a key is a credential)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] if key else None


# Deciding ------------------------------------------------------------------------------------


def check_sessions(keys):
    """{session key: Access} for every key (None and unknown keys are "not signed in")."""
    keys = {key for key in keys if key}
    data, expiry = _load_sessions(keys)
    users = _load_users({(d.get(BACKEND_SESSION_KEY), d.get(SESSION_KEY)) for d in data.values()})
    allowed = _allowed([user for user in users.values() if user is not None])
    verdicts = {None: Access(CLOSE_NOT_SIGNED_IN, reason="not signed in")}
    for key in keys:
        session = data.get(key)
        user = users.get((session.get(BACKEND_SESSION_KEY), session.get(SESSION_KEY))) if session else None
        if user is None or not _hash_verified(session, user):
            verdicts[key] = Access(CLOSE_NOT_SIGNED_IN, reason="the session ended; sign in again")
        elif user.pk not in allowed:
            needed = ", ".join(registry.view_permissions())
            verdicts[key] = Access(CLOSE_FORBIDDEN, user.pk, user.get_username(),
                                   reason=f"{user.get_username()} may not view the dashboard ({needed})")
        else:
            stamp = expiry.get(key)
            verdicts[key] = Access(None, user.pk, user.get_username(), stamp.timestamp() if stamp else None)
    return verdicts


def check_session(key):
    """The verdict for one session key."""
    return check_sessions([key]).get(key) or check_sessions([None])[None]


def _engine():
    return import_module(settings.SESSION_ENGINE)


def _load_sessions(keys):
    """({key: session data}, {key: expiry datetime}) for the live sessions among `keys`."""
    store_class = _engine().SessionStore
    data, expiry = {}, {}
    if hasattr(store_class, "get_model_class"):  # db and cached_db: the table is the truth
        model, decoder, now = store_class.get_model_class(), store_class(), timezone.now()
        keys = list(keys)
        for start in range(0, len(keys), 500):
            rows = model.objects.filter(session_key__in=keys[start:start + 500], expire_date__gt=now)
            for key, raw, expires in rows.values_list("session_key", "session_data", "expire_date"):
                data[key], expiry[key] = decoder.decode(raw), expires
        return data, expiry
    for key in keys:  # other engines: one load each
        session = store_class(key).load()
        if session:
            data[key] = session
    return data, expiry


def _load_users(pairs):
    """{(backend path, user id): user or None}, reading each backend's users in one query."""
    users = {}
    by_backend = {}
    for path, user_id in pairs:
        if path in settings.AUTHENTICATION_BACKENDS and user_id is not None:
            by_backend.setdefault(path, set()).add(user_id)
    model = get_user_model()
    for path, ids in by_backend.items():
        backend = load_backend(path)
        if isinstance(backend, ModelBackend):
            wanted = {model._meta.pk.to_python(i): i for i in ids}
            for user in model._default_manager.filter(pk__in=list(wanted)):
                if backend.user_can_authenticate(user):
                    users[(path, wanted[user.pk])] = user
        else:
            for user_id in ids:
                users[(path, user_id)] = backend.get_user(user_id)
    return users


def _hash_verified(session, user):
    """The session was made for the user's current password (or a fallback secret's)."""
    if not hasattr(user, "get_session_auth_hash"):
        return True
    stored = session.get(HASH_SESSION_KEY)
    if not stored:
        return False
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    return any(constant_time_compare(stored, h) for h in user.get_session_auth_fallback_hash())


def _allowed(users):
    """The pks of `users` that have every view permission the streamed entities declare
    (realtime/registry.py), the way ModelBackend decides: active superusers have them all
    (the users were just read, so no query), the others through their own permissions or
    their groups' (one statement per permission)."""
    if not users:
        return set()
    permissions = registry.view_permissions()
    if not all(isinstance(b, ModelBackend) or not hasattr(b, "has_perm") for b in get_backends()):
        return {user.pk for user in users if user.is_active and user.has_perms(permissions)}
    active = [u for u in users if u.is_active]
    superusers = {u.pk for u in active if u.is_superuser}
    others = [u.pk for u in active if not u.is_superuser]
    with connections[get_user_model()._default_manager.db].cursor() as cursor:
        for permission in permissions:
            if not others:
                break
            cursor.execute(_granted_sql(len(others)), [*permission.split("."), *others] * 2)
            others = [row[0] for row in cursor.fetchall()]
    return superusers | set(others)


def _granted_sql(n):
    """Which of n users hold a permission (app label, codename), directly or through a group:
    the SQL ModelBackend's queries amount to, written out because the ORM spent 30 times
    longer building it than SQLite spent running it, once for every socket that connects."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    user = get_user_model()
    q = connections[user._default_manager.db].ops.quote_name
    direct, member = user.user_permissions.through._meta, user.groups.through._meta
    granted = Group.permissions.through._meta
    holder = {"direct": direct.get_field("user").column, "member": member.get_field("user").column}
    permission = (f"JOIN {q(Permission._meta.db_table)} p ON p.id = {{link}} "
                  f"JOIN {q(ContentType._meta.db_table)} ct ON ct.id = p.content_type_id "
                  "WHERE ct.app_label = %s AND p.codename = %s AND {holder} IN ({marks})")
    marks = ", ".join(["%s"] * n)
    return (
        f"SELECT d.{q(holder['direct'])} FROM {q(direct.db_table)} d "
        + permission.format(link=f"d.{q(direct.get_field('permission').column)}",
                            holder=f"d.{q(holder['direct'])}", marks=marks)
        + f" UNION SELECT m.{q(holder['member'])} FROM {q(member.db_table)} m "
        f"JOIN {q(granted.db_table)} g ON g.{q(granted.get_field('group').column)} = m.{q(member.get_field('group').column)} "
        + permission.format(link=f"g.{q(granted.get_field('permission').column)}",
                            holder=f"m.{q(holder['member'])}", marks=marks)
    )


def wall_clock():
    return datetime.now().timestamp()


# Telling the processes -----------------------------------------------------------------------
# Payloads of LAYER_ACCESS messages: {"ended": [session fingerprints]} closes those sockets
# with 4501 at once; {"users": [ids]} or {"all": true} re-checks sockets; {"close_users":
# [ids], "code": c} closes a user's sockets with `c` (the admin's "close dashboards").


def announce(using="default", **payload):
    """Send an access change to every process once the current transaction commits, merging
    all of one transaction's changes into one message (deleting 10,000 sessions is one)."""
    from . import publish

    connection = connections[using]
    if not connection.in_atomic_block:
        return publish.send_control(payload)
    flush, pending = getattr(connection, "access_pending", None) or (None, None)
    # A rolled-back transaction (or savepoint) dropped its flush: start again.
    if flush is None or not any(entry[1] is flush for entry in connection.run_on_commit):
        pending = {}

        def flush():
            connection.access_pending = None
            publish.send_control({k: sorted(v) if isinstance(v, set) else v for k, v in pending.items()})

        connection.access_pending = (flush, pending)
        transaction.on_commit(flush, using=using)
    for name, value in payload.items():
        if isinstance(value, (list, tuple, set)):
            pending.setdefault(name, set()).update(value)
        else:
            pending[name] = value

"""Who is making the changes being written now: an operator, an agent, or the system.

A context variable, so it follows the code that writes: the request middleware below sets it
for signed-in people, the agent API's authentication sets it for an agent
(tasks/api/authentication.py), and the liveness sweep for itself (tasks/liveness.py). A write
with no actor set (a management command, a shell) is the system, named after the process.
Sequencing stores the actor with every change it numbers (realtime/changes.py).

The request's user is read only when a change is written, so requests that write nothing
never load the session's user for it.
"""
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

OPERATOR, AGENT, SYSTEM = "operator", "agent", "system"


@dataclass(frozen=True)
class Actor:
    kind: str  # OPERATOR, AGENT or SYSTEM
    id: str | None = None  # the user's or the agent's primary key
    label: str = ""  # what a person reads: "alice", "bot-3", "liveness sweep"


_current = ContextVar("realtime_actor", default=None)


def process_label(argv=None):
    """ "manage.py seed_demo", "daphne": the system actor of a process that set none."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return "system"
    program = os.path.basename(argv[0]) or "python"
    if program == "__main__.py":  # python -m <package>
        program = os.path.basename(os.path.dirname(argv[0])) or "python"
    if program == "manage.py" and len(argv) > 1:
        return f"manage.py {argv[1]}"
    return program


def current():
    """The actor of the changes written now (resolving a request's user if need be)."""
    value = _current.get()
    if callable(value):
        value = value()
    return value or Actor(SYSTEM, None, process_label())


def set_current(actor):
    """Set the actor (an Actor, or a callable returning one) until reset; returns the token."""
    return _current.set(actor)


def reset(token):
    _current.reset(token)


@contextmanager
def acting_as(kind, id=None, label=""):
    """Attribute the changes written inside the block to this actor."""
    token = _current.set(Actor(kind, None if id is None else str(id), label))
    try:
        yield
    finally:
        _current.reset(token)


def of_user(user):
    """The actor for a signed-in person, or None for an anonymous one."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Actor(OPERATOR, str(user.pk), user.get_username())


class ActorMiddleware:
    """Attributes the changes a request writes to its signed-in user (after authentication).

    Resets on the way out, which also ends any actor set further in (the agent API's), so
    nothing leaks into the next request run by the same thread or context."""

    # Both modes, so that under ASGI a request does not cross into a thread and back just for
    # this middleware (tests/test_static_files.py keeps every middleware async-capable).
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = _current.set(lambda: of_user(getattr(request, "user", None)))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)

    async def __acall__(self, request):
        token = _current.set(lambda: of_user(getattr(request, "user", None)))
        try:
            return await self.get_response(request)
        finally:
            _current.reset(token)

"""The domain's errors: a request the rules refuse. Each interface translates them (DRF to
HTTP in tasks/api/errors.py, the admin to form errors and messages, commands to CommandError)."""


class DomainError(Exception):
    """A request the rules refuse. `field` names the field at fault, when there is one."""

    def __init__(self, message, field=None, **extra):
        super().__init__(message)
        self.message, self.field, self.extra = message, field, extra


class NotFound(DomainError):
    """No such task or agent."""


class NotYours(DomainError):
    """The agent acts on a task that is not (or no longer) assigned to it."""


class Conflict(DomainError):
    """Valid, but the current state forbids it (a lost claim, a task already running)."""


class InvalidChange(DomainError):
    """A status change or a combination of values the rules do not allow."""


class StaleEdit(DomainError):
    """The row changed since the editor loaded it."""

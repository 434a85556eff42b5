"""API errors: the domain's errors (tasks/domain.py) as HTTP answers, and a 503 for a writer
that gave up waiting for the stream lock."""
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException

from .. import domain


class Conflict(APIException):
    """409: the request was valid but the task or agent is in a state that forbids it now."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task changed meanwhile; fetch it again and retry."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, **extra):
        super().__init__(detail, code)
        self.extra = extra  # more fields for the body, e.g. current_task


class Busy(APIException):
    """503: the stream lock was not granted in time (realtime/sequencing.py); retry shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task stream is locked by another transaction; retry in a few seconds."
    default_code = "stream_locked"


def from_domain(exc):
    """The DRF exception for a domain error: 404, 403, 409 or a 400 naming the field."""
    if isinstance(exc, domain.NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, domain.NotYours):
        return exceptions.PermissionDenied(exc.message)
    if isinstance(exc, (domain.Conflict, domain.StaleEdit)):
        return Conflict(exc.message, **exc.extra)
    return exceptions.ValidationError({exc.field or "non_field_errors": [exc.message]})


def exception_handler(exc, context):
    """DRF's handler for the domain's errors, plus the extra fields a Conflict carries, and a
    503 with Retry-After (not a 500) when a writer gave up waiting for the stream lock."""
    if isinstance(exc, domain.DomainError):
        exc = from_domain(exc)
    from django.db import OperationalError
    from rest_framework.views import exception_handler as drf_handler

    from realtime.sequencing import lock_timed_out

    if isinstance(exc, OperationalError) and lock_timed_out(exc):
        exc = Busy(str(exc) if "stream lock" in str(exc) else None)
        response = drf_handler(exc, context)
        response["Retry-After"] = "2"
        return response
    response = drf_handler(exc, context)
    if response is not None and isinstance(exc, Conflict) and exc.extra:
        response.data.update(exc.extra)
    return response

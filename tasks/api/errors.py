"""API errors: every answer under /api/ is JSON, `{"detail": "..."}` (plus fields such as
`current_task`), or for a 400 the fields at fault with their messages.

The domain's errors (tasks/domain.py) become HTTP answers here, a writer that gave up waiting
for the stream lock becomes a 503, and an unexpected exception a JSON 500. Errors Django
answers before a view runs (CSRF, and with DEBUG off 400/403/404/500) go through
dashboard_site/api_errors.py, which uses error_response() for the same shape."""
import logging

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException

from .. import domain

logger = logging.getLogger("django.request")

SERVER_ERROR = "Internal server error; it has been logged. Retry later, and report it if it persists."
# DRF's "Authentication credentials were not provided." says what is missing, not what to do.
SIGN_IN = ("Not signed in. Operators sign in as a staff user at /accounts/login/ and send the session "
           "cookie (writes also send the csrftoken cookie's value in X-CSRFToken); agents use the "
           "/api/agent/ endpoints with `Authorization: Bearer <token>`.")


class Conflict(APIException):
    """409: the request was valid but the task or agent is in a state that forbids it now."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task changed meanwhile; fetch it again and retry."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, **extra):
        super().__init__(detail, code)
        self.extra = extra  # more fields for the body, e.g. current_task


class Busy(APIException):
    """503: the stream lock was not granted in time (realtime/sequencing.py), or a progress
    report waited past API_REPORT_WAIT for the write ahead of it (tasks/report_batch.py);
    retry shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task stream is locked by another transaction; retry in a few seconds."
    default_code = "stream_locked"

RETRY_AFTER = "2"  # seconds, on every 503 of the API


def error_response(status_code, detail, **extra):
    """A JSON error answer in the API's shape, for code outside DRF's views."""
    return JsonResponse({"detail": detail, **extra}, status=status_code)


def from_domain(exc):
    """The DRF exception for a domain error: 404, 403, 409 or a 400 naming the field.

    A status change the task's current status forbids (cancelling a finished task, reporting
    on a cancelled one) is a 409: the request itself is well-formed, and the same request
    succeeds on a task in another state. Only a malformed request is a 400."""
    if isinstance(exc, domain.NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, domain.NotYours):
        return exceptions.PermissionDenied(exc.message)
    if isinstance(exc, (domain.Conflict, domain.StaleEdit)):
        return Conflict(exc.message, **exc.extra)
    if isinstance(exc, domain.InvalidChange) and exc.field == "status":
        return Conflict(exc.message, **exc.extra)
    return exceptions.ValidationError({exc.field or "non_field_errors": [exc.message]})


def server_error(exc, request):
    """A JSON 500 for an exception no handler expected, logged with its traceback as Django
    logs its own 500s; the signal lets Django's test client re-raise it in tests."""
    got_request_exception.send(sender=None, request=request)
    logger.error("Internal Server Error: %s", request.path, exc_info=exc)
    detail = f"{SERVER_ERROR} ({type(exc).__name__}: {exc})" if settings.DEBUG else SERVER_ERROR
    response = error_response(500, detail)
    response._has_been_logged = True  # Django's request logging would log it a second time
    return response


def exception_handler(exc, context):
    """DRF's handler for the domain's errors, plus the extra fields a Conflict carries, a
    503 with Retry-After (not a 500) when a writer gave up waiting for the stream lock or a
    progress report for the write ahead of it, and a JSON 500 for anything else."""
    if isinstance(exc, domain.DomainError):
        exc = from_domain(exc)
    if isinstance(exc, exceptions.NotAuthenticated) and exc.detail == exceptions.NotAuthenticated.default_detail:
        exc.detail = exceptions.ErrorDetail(SIGN_IN, code=exc.detail.code)  # keeps DRF's 401 or 403
    if isinstance(exc, SuspiciousOperation):  # e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE: Django's 400
        exc = exceptions.ParseError(f"The request could not be read: {exc}")
    from django.db import OperationalError
    from rest_framework.views import exception_handler as drf_handler

    from realtime.sequencing import lock_timed_out

    from ..report_batch import ReportTimeout

    if isinstance(exc, ReportTimeout):
        exc = Busy(str(exc), code="report_wait")
    elif isinstance(exc, OperationalError) and lock_timed_out(exc):
        exc = Busy(str(exc) if "stream lock" in str(exc) else None)
    if isinstance(exc, Busy):
        response = drf_handler(exc, context)
        response["Retry-After"] = RETRY_AFTER
        return response
    response = drf_handler(exc, context)
    if response is None:
        request = context["request"]
        return server_error(exc, getattr(request, "_request", request))
    if isinstance(exc, Conflict) and exc.extra:
        response.data.update(exc.extra)
    return response

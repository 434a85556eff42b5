"""API errors beyond DRF's own: the 409 for claims that lose and conflicting task state."""
from rest_framework import status
from rest_framework.exceptions import APIException


class Conflict(APIException):
    """409: the request was valid but the task or agent is in a state that forbids it now."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task changed meanwhile; fetch it again and retry."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, **extra):
        super().__init__(detail, code)
        self.extra = extra  # more fields for the body, e.g. current_task


def exception_handler(exc, context):
    """DRF's handler, plus the extra fields a Conflict carries."""
    from rest_framework.views import exception_handler as drf_handler

    response = drf_handler(exc, context)
    if response is not None and isinstance(exc, Conflict) and exc.extra:
        response.data.update(exc.extra)
    return response

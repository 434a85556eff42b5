"""JSON answers under /api/ for the errors Django gives before or instead of an API view.

An API client must never have to parse an HTML page: a CSRF failure (CsrfViewMiddleware
answers before DRF sees the request) and, with DEBUG off, Django's 400/403/404/500 pages
answer JSON in the API's shape (tasks/api/errors.py) for paths under /api/, and the usual
pages everywhere else. Unknown /api/ paths get their JSON 404 from tasks/api/urls.py's
catch-all, and a refused Host its JSON 400 from ApiHostCheck, both with DEBUG on too."""
import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import DisallowedHost
from django.views import csrf, defaults

from tasks.api.errors import SERVER_ERROR, error_response

security_log = logging.getLogger("django.security.DisallowedHost")


def is_api(request):
    return request.path == "/api" or request.path.startswith("/api/")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: the reason as JSON under /api/, Django's page elsewhere."""
    if is_api(request):
        return error_response(403, f"CSRF Failed: {reason} Send the csrftoken cookie's value in the X-CSRFToken header.")
    return csrf.csrf_failure(request, reason)


def bad_request(request, exception):
    """handler400 (a SuspiciousOperation, a request body too large)."""
    if is_api(request):
        return error_response(400, f"Bad request: {exception or 'the request could not be read.'}")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    """handler403 (django.core.exceptions.PermissionDenied outside DRF)."""
    if is_api(request):
        return error_response(403, str(exception) or "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    """handler404 (with DEBUG off)."""
    if is_api(request):
        return error_response(404, f"No API endpoint at {request.path}. The endpoints are listed at /api/docs/.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500 (with DEBUG off): an exception outside the API views' own handler."""
    if is_api(request):
        return error_response(500, SERVER_ERROR)
    return defaults.server_error(request)



class ApiHostCheck:
    """Middleware, first in the stack: a Host that ALLOWED_HOSTS refuses gets a JSON 400 under
    /api/ in debug mode too (with DEBUG on, Django answers it with its HTML debug page; it
    calls handler400 only with DEBUG off). Logged as Django logs it."""

    # Both modes, so a static file's asynchronous path does not cross into a thread for it.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.refused(request) or self.get_response(request)

    async def __acall__(self, request):
        return self.refused(request) or await self.get_response(request)

    @staticmethod
    def refused(request):
        """The JSON 400 for an /api/ request whose Host is not allowed, else None."""
        if not is_api(request):
            return None
        try:
            request.get_host()
        except DisallowedHost as exc:
            security_log.error(str(exc), extra={"status_code": 400, "request": request})
            return bad_request(request, exc)
        return None

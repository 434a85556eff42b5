"""Limit/offset pagination with bounds, so no query string can make the database overflow.

`limit` and `offset` must be integers (DRF would silently use the defaults for `?limit=abc`,
which the schema does not allow); values past the bounds are clamped, as documented."""
import re

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 10**12  # far past any real table; SQLite raises OverflowError above 2**63


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` (default PAGE_SIZE, at most 500) and `?offset=`; answers carry `count`."""

    max_limit = 500

    def get_limit(self, request):
        if self.limit_query_param not in request.query_params:
            return self.default_limit
        return min(self._integer(request, self.limit_query_param, minimum=1), self.max_limit)

    def get_offset(self, request):
        if self.offset_query_param not in request.query_params:
            return 0
        return min(self._integer(request, self.offset_query_param, minimum=0), MAX_OFFSET)

    def _integer(self, request, name, minimum):
        raw = request.query_params[name]
        value = None
        if re.fullmatch(r"-?[0-9]+", raw):
            # More than 30 digits is past every bound: no need to parse it (Python refuses
            # to parse more than 4,300 digits anyway).
            value = int(raw) if len(raw) <= 30 else (-1 if raw.startswith("-") else MAX_OFFSET)
        if value is None or value < minimum:
            raise ValidationError({name: [f"Send an integer of at least {minimum} (larger values are clamped)."]})
        return value

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Rows per page (default {self.default_limit}; more than {self.max_limit} counts as {self.max_limit})."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"]["minimum"] = 0
                parameter["description"] = "How many rows to skip (default 0)."
        return parameters

"""Limit/offset pagination with bounds, so no query string can make the database overflow."""
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 10**12  # far past any real table; SQLite raises OverflowError above 2**63


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` (default PAGE_SIZE, at most 500) and `?offset=`; answers carry `count`."""

    max_limit = 500

    def get_offset(self, request):
        return min(super().get_offset(request), MAX_OFFSET)

"""Pagination for every list endpoint of the API (both apps import it from here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class DefaultCursorPagination(CursorPagination):
    """Cursor pagination by id: stable under inserts and O(1) per page on large tables."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def paginate(
    view: APIView,
    request: Request,
    queryset: QuerySet,
    serializer_class: Any,
    *,
    ordering: Sequence[str] | None = None,
    **kwargs: Any,
) -> Response:
    """One cursor page of ``queryset`` serialized with ``serializer_class`` (extra ``kwargs`` go to it).

    ``ordering`` replaces the default newest-first order; it must end in a unique
    field (``id``) so that the cursor is stable.
    """
    paginator = DefaultCursorPagination()
    if ordering is not None:
        paginator.ordering = tuple(ordering)
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True, **kwargs).data)

"""Request guards that apply before any view reads its input."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, JsonResponse

from annotation.errors import ValidationFailed


class QueryStringGuardMiddleware:
    """Refuse a query string that carries the NUL character, naming the parameter.

    PostgreSQL text cannot hold NUL, so a filter such as ``?tag=a%00b`` would fail
    inside the database with a 500. JSON bodies are checked by the parsers
    (annotation/parsers.py); this covers the query string of every route once.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                error = ValidationFailed(
                    "Query parameters must not contain the NUL character (%00).",
                    field=key.replace("\x00", "\\u0000"),
                )
                if request.path.startswith("/api/"):
                    return JsonResponse(error.as_dict(), status=error.status_code)
                raise BadRequest(error.detail)
        return self.get_response(request)

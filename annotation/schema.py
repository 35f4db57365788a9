"""OpenAPI description of Ballot: token authentication, cursor pages and error responses."""

from __future__ import annotations

import inspect

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "annotation.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token authentication: "Authorization: Token <key>" (create one at /api/v1/auth/token/).',
        }


def _paginates(view_class: type) -> bool:
    """Whether a view's GET answers with a cursor page (it calls ``paginate`` or a paginator).

    Ballot's views are plain ``APIView``s that paginate by hand, so drf-spectacular cannot
    see it; reading the handler keeps every list, including new ones, documented as a page.
    """
    handler = getattr(view_class, "get", None)
    if handler is None:
        return False
    try:
        source = inspect.getsource(handler)
    except (OSError, TypeError):
        return False
    return "paginate(" in source or ".paginate_queryset(" in source


class BallotAutoSchema(AutoSchema):
    """drf-spectacular's schema with Ballot's facts: cursor pages and every error status.

    Every operation lists the error statuses it can answer, each with the one error shape
    (``Error``): 401/403 (not signed in / not allowed), 404 (a path id that is not yours or
    does not exist, or a bad cursor), 400 (bad input), 413 (body too large), 409 (a
    conflict with stored state) and 429 (throttled); views add their own (410, 422).
    """

    def _get_paginator(self):
        if self.method == "GET" and _paginates(type(self.view)):
            from annotation.pagination import DefaultCursorPagination

            return DefaultCursorPagination()
        return super()._get_paginator()

    def _error_codes(self) -> list[str]:
        codes = {"401", "403"}
        writes = self.method in ("POST", "PUT", "PATCH")
        paginated = self.method == "GET" and _paginates(type(self.view))
        if "{" in self.path or paginated:
            codes.add("404")
        if writes or paginated or self.get_override_parameters():
            codes.add("400")
        if writes:
            codes |= {"409", "413"}
        if self.method == "DELETE":
            codes.add("409")
        if getattr(self.view, "throttle_classes", None) or "/auth/" in self.path:
            codes.add("429")
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        from annotation.serializers import ErrorOut

        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOut, code, direction=direction)
        return responses

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


# Scripts only from Ballot's own static files: no inline script, no on*= handler, no
# eval, so a stored payload that slipped past escaping still cannot run. Styles may be
# inline (the charting library and Swagger UI set style attributes); images may be data:
# URLs (Swagger UI's icons). Overridable whole with BALLOT_CONTENT_SECURITY_POLICY.
DEFAULT_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Send the Content-Security-Policy header (``BALLOT_CONTENT_SECURITY_POLICY``) on
    every response that has none (Django 5.2 has no CSP support of its own).

    Sits above XFrameOptionsMiddleware, so it sees the X-Frame-Options answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.conf import settings

        self.get_response = get_response
        self.policy = getattr(settings, "BALLOT_CONTENT_SECURITY_POLICY", "") or (
            DEFAULT_CONTENT_SECURITY_POLICY
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = self.policy
            # A browser obeys frame-ancestors over X-Frame-Options: a page its view lets
            # the site frame (the set-up form's preview) keeps that permission.
            if response.get("X-Frame-Options", "").upper() == "SAMEORIGIN":
                policy = policy.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
            response["Content-Security-Policy"] = policy
        return response

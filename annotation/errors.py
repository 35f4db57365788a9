"""One domain exception type, mapped to HTTP in one handler.

Services raise ``BallotError`` subclasses; views never build error responses by
hand. Every 4xx body has the same shape::

    {"error": "<code>", "detail": "<reason>", "field": "<field path or null>", "errors": [...]}
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class BallotError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None, errors: list[dict] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors or ([{"field": field, "detail": detail}] if field else [])

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "detail": self.detail,
            "field": self.field,
            "errors": self.errors,
        }


class ValidationFailed(BallotError):
    status_code = 400
    code = "invalid"


def validated(serializer_class: Any, data: Any, *, partial: bool = False) -> dict[str, Any]:
    """``data`` checked by ``serializer_class``; a 400 in the one error shape when it is wrong."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class NotFound(BallotError):
    status_code = 404
    code = "not_found"


class Forbidden(BallotError):
    status_code = 403
    code = "forbidden"


class Conflict(BallotError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(BallotError):
    status_code = 413
    code = "too_large"


class Unprocessable(BallotError):
    """The request is well-formed but cannot be honoured as sent (e.g. an Idempotency-Key reused with another body)."""

    status_code = 422
    code = "unprocessable"


class LeaseLost(BallotError):
    status_code = 410
    code = "lease_lost"


class NothingToDo(BallotError):
    status_code = 204
    code = "queue_empty"


class Unavailable(BallotError):
    """The database is out of reach for a moment (restarting, failing over, connections
    cut): 503 with Retry-After, so clients retry with the same Idempotency-Key."""

    status_code = 503
    code = "unavailable"
    retry_after_seconds = 2

    def __init__(self, detail: str = "The database is briefly unavailable; retry shortly.") -> None:
        super().__init__(detail)


# Raised when PostgreSQL restarts or a connection is cut; a deadlock or a serialization
# failure is an OperationalError too, and retrying is the right answer to those as well.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def unavailable_response() -> Response:
    error = Unavailable()
    return Response(
        error.as_dict(),
        status=error.status_code,
        headers={"Retry-After": str(error.retry_after_seconds)},
    )


def _flatten(detail: Any, prefix: str = "") -> list[dict]:
    if isinstance(detail, dict):
        out: list[dict] = []
        for key, value in detail.items():
            # DRF keys a list serializer's errors by index: questions[0].position, not questions.0.
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, path))
        return out
    if isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return [{"field": prefix or None, "detail": str(v)} for v in detail]
        out = []
        for index, value in enumerate(detail):
            out.extend(_flatten(value, f"{prefix}[{index}]" if prefix else str(index)))
        return out
    return [{"field": prefix or None, "detail": str(detail)}]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, BallotError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return unavailable_response()
    if isinstance(exc, RequestDataTooBig):
        # Django's own body-size check (form and multipart fields): 413, not a bare 400 page.
        error = PayloadTooLarge(str(exc) or "The request body is too large.", field="body")
        return Response(error.as_dict(), status=error.status_code)
    if isinstance(exc, TooManyFieldsSent):
        error = ValidationFailed(str(exc), field="body")
        return Response(error.as_dict(), status=error.status_code)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    # Imported here: rest_framework.views loads the authentication classes, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": None, "detail": "Invalid input."}
        response.data = {
            "error": "invalid",
            "detail": first["detail"],
            "field": first["field"],
            "errors": errors,
        }
    elif isinstance(exc, drf_exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        response.data = {"error": code, "detail": str(exc.detail), "field": None, "errors": []}
    return response

"""Request body parsing with Ballot's input limits, in one place.

Every JSON document Ballot accepts (API bodies, JSON form fields, import lines,
the labeling page's submissions) goes through ``json_loads_strict``, so the
limits below hold on every endpoint, including ones added later:

- no ``NaN``, ``Infinity`` or ``-Infinity`` and no float that overflows to them
  (``1e400``): they are not JSON, PostgreSQL's jsonb rejects them and they
  break every later read;
- integers fit in 64 bits (anything wider has no column to go to, and Python
  refuses to even convert more than 4,300 digits);
- nesting at most ``BALLOT_JSON_MAX_DEPTH`` deep (default 32);
- no NUL character in any string or key (PostgreSQL text cannot hold one);
- strings at most ``BALLOT_MAX_TEXT_LENGTH`` characters (default 100,000).

Bodies are capped at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``BALLOT_MAX_BODY_BYTES``)
and import bodies at ``BALLOT_IMPORT_MAX_BYTES``; a larger body gets 413.
Errors are ``ValidationFailed`` naming the path of the bad value
(``conversation[0].content``), so the client gets 400 in the one error shape.
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

from django.conf import settings
from django.http import QueryDict
from rest_framework.parsers import BaseParser, FormParser, JSONParser

from annotation.errors import PayloadTooLarge, ValidationFailed

INT64_MAX = 2**63 - 1
# Characters of an integer literal beyond which it cannot fit in 64 bits; checked
# before ``int()`` so a 100,000-digit literal costs nothing.
_MAX_INT_DIGITS = 20


class _Rejected:
    """A value the decoder met but must not accept; the walk reports it with its path."""

    __slots__ = ("literal", "reason")

    def __init__(self, literal: str, reason: str):
        self.literal = literal
        self.reason = reason


def _parse_constant(literal: str) -> _Rejected:
    return _Rejected(literal, f"{literal} is not a number JSON allows; send a finite number.")


def _parse_float(literal: str) -> float | _Rejected:
    value = float(literal)
    if not math.isfinite(value):
        return _Rejected(literal[:40], "The number is too large (it overflows to infinity).")
    return value


def _parse_int(literal: str) -> int | _Rejected:
    digits = len(literal) - (literal[0] == "-")
    if digits > _MAX_INT_DIGITS:
        return _Rejected(literal[:40], "The integer is out of range (at most 64 bits).")
    value = int(literal)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        return _Rejected(literal, "The integer is out of range (at most 64 bits).")
    return value


def max_depth() -> int:
    return int(getattr(settings, "BALLOT_JSON_MAX_DEPTH", 32))


def max_text_length() -> int:
    return int(getattr(settings, "BALLOT_MAX_TEXT_LENGTH", 100_000))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def json_check(value: Any, *, field: str = "") -> None:
    """Check an already-decoded JSON value against Ballot's limits (see the module docstring).

    Iterative, so a value nested far deeper than the limit cannot exhaust the stack.
    Raises ``ValidationFailed`` naming the path of the first bad value.
    """
    depth_limit, text_limit = max_depth(), max_text_length()
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise ValidationFailed(
                    "Text must not contain the NUL character (\\u0000).", field=path or None
                )
            if len(node) > text_limit:
                raise ValidationFailed(
                    f"Text is too long: {len(node)} characters, at most {text_limit}.",
                    field=path or None,
                )
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise ValidationFailed(
                    "NaN and Infinity are not allowed; send a finite number.", field=path or None
                )
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not -INT64_MAX - 1 <= node <= INT64_MAX:
                raise ValidationFailed(
                    "The integer is out of range (at most 64 bits).", field=path or None
                )
        elif isinstance(node, _Rejected):
            raise ValidationFailed(node.reason, field=path or None)
        elif isinstance(node, (dict, list)):
            if depth >= depth_limit:
                raise ValidationFailed(
                    f"The JSON is nested too deeply (at most {depth_limit} levels).",
                    field=path or None,
                )
            if isinstance(node, dict):
                for key, child in node.items():
                    if isinstance(key, str) and "\x00" in key:
                        raise ValidationFailed(
                            "Keys must not contain the NUL character (\\u0000).", field=path or None
                        )
                    stack.append((child, _join(path, str(key)), depth + 1))
            else:
                for index, child in enumerate(node):
                    stack.append((child, _join(path, index), depth + 1))


def json_loads_strict(text: str | bytes, *, field: str = "") -> Any:
    """Decode one JSON document and hold it to Ballot's limits; ``ValidationFailed`` on any breach."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("The body is not valid UTF-8.", field=field or "body") from None
    try:
        value = json.loads(
            text,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise ValidationFailed(
            f"The JSON is nested too deeply (at most {max_depth()} levels).", field=field or "body"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            field=field or "body",
        ) from None
    json_check(value, field=field)
    return value


def read_limited(stream: IO[bytes] | None, *, limit: int, what: str = "The request body") -> bytes:
    """Read at most ``limit`` bytes; ``PayloadTooLarge`` (413) if there is more."""
    if stream is None:
        return b""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is larger than {limit} bytes.", field="body")
    return data


def _content_length(parser_context: dict | None) -> int | None:
    request = (parser_context or {}).get("request")
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else None
    except (TypeError, ValueError):
        return None


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with Ballot's limits: body size (413), depth, NUL, non-finite and huge numbers."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = _content_length(parser_context)
        if limit is not None and length is not None and length > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.", field="body")
        data = read_limited(stream, limit=limit) if limit is not None else stream.read()
        if not data.strip():
            raise ValidationFailed("The body is empty; send a JSON document.", field="body")
        return json_loads_strict(data)


class StrictFormParser(FormParser):
    """URL-encoded forms, capped at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` like JSON bodies (413 above it)."""

    def parse(self, stream, media_type=None, parser_context=None) -> QueryDict:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = _content_length(parser_context)
        if limit is not None and length is not None and length > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.", field="body")
        data = read_limited(stream, limit=limit) if limit is not None else stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return QueryDict(data, encoding=encoding)


class JsonLinesParser(BaseParser):
    """Hands a JSONL body to the importer as raw bytes; the importer parses it line by line.

    Capped at ``BALLOT_IMPORT_MAX_BYTES`` (413 above it).
    """

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        limit = int(settings.BALLOT_IMPORT_MAX_BYTES)
        length = _content_length(parser_context)
        if length is not None and length > limit:
            raise PayloadTooLarge(f"The import is larger than {limit} bytes.", field="file")
        return read_limited(stream, limit=limit, what="The import")


class JsonlParser(JsonLinesParser):
    media_type = "application/jsonl"

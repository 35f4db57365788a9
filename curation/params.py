"""Strict checks for job and export parameters.

Parameters arrive as parsed JSON from the API or as ``key=value`` pairs from the
management commands. Every value is checked for its type and range before a job
row is written, so bad input is a 400 naming ``params.<key>`` and the reason,
never a 500 from deep inside a job (``int("abc")``, ``date(2024, 2, 30)``,
``float(10**400)``) and never a job that fails later for a reason known now.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

from annotation.errors import ValidationFailed

PREFIX = "params."
# Seeds go to numpy's and torch's generators, which take unsigned 32/64-bit values.
SEED_MAX = 2**32 - 1
MAX_NAME_LENGTH = 200
MAX_LIST_LENGTH = 1000
MAX_STRING_LENGTH = 500


def _fail(key: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{key} {reason}", field=f"{PREFIX}{key}")


def reject_unknown(params: Mapping[str, Any], allowed: Collection[str], what: str) -> None:
    """400 naming the first parameter (in sorted order) that ``what`` does not take."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown {what} parameter {unknown[0]!r}; expected some of {', '.join(sorted(allowed))}.",
            field=f"{PREFIX}{unknown[0]}",
        )


def number(
    params: Mapping[str, Any],
    key: str,
    *,
    low: float,
    high: float,
    integer: bool = False,
    nullable: bool = False,
    high_open: bool = False,
) -> Any:
    """A finite number (an integer when ``integer``) in [low, high] (or [low, high))."""
    value = params.get(key)
    if value is None:
        if nullable:
            return None
        raise _fail(key, "is required.")
    kind = "an integer" if integer else "a number"
    # bool is an int subclass: ``true`` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be {kind}, not {type(value).__name__}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(key, "must be a finite number.")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise _fail(key, "must be an integer.")
        value = int(value)
    # Compare before converting: float(10**400) would overflow.
    above = value >= high if high_open else value > high
    if value < low or above:
        raise _fail(key, f"must lie in [{low}, {high}{')' if high_open else ']'}.")
    return int(value) if integer else float(value)


def boolean(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key)
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, not {value!r}.")
    return value


def choice(params: Mapping[str, Any], key: str, options: Collection[str]) -> str:
    value = params.get(key)
    if not isinstance(value, str) or value not in options:
        raise _fail(key, f"must be one of {', '.join(options)}.")
    return value


def string(
    params: Mapping[str, Any], key: str, *, max_length: int = MAX_STRING_LENGTH, nullable=False
) -> str | None:
    value = params.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, not {type(value).__name__}.")
    if len(value) > max_length:
        raise _fail(key, f"must be at most {max_length} characters.")
    return value


def string_list(
    params: Mapping[str, Any],
    key: str,
    *,
    options: Collection[str] | None = None,
    comma_separated: bool = True,
) -> list[str]:
    """A list of strings; the CLI may give ``a,b``. Duplicates are dropped, order kept."""
    value = params.get(key)
    if value is None:
        return []
    if isinstance(value, str) and comma_separated:
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise _fail(key, f"must be a list of strings, not {type(value).__name__}.")
    if len(value) > MAX_LIST_LENGTH:
        raise _fail(key, f"must have at most {MAX_LIST_LENGTH} entries.")
    out: list[str] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry or len(entry) > MAX_STRING_LENGTH:
            raise ValidationFailed(
                f"{key}[{index}] must be a non-empty string of at most {MAX_STRING_LENGTH} "
                "characters.",
                field=f"{PREFIX}{key}",
            )
        if options is not None and entry not in options:
            raise ValidationFailed(
                f"{key}[{index}] {entry!r} is not one of {', '.join(options)}.",
                field=f"{PREFIX}{key}",
            )
        if entry not in out:
            out.append(entry)
    return out


def integer_list(params: Mapping[str, Any], key: str, *, max_length: int = 100_000) -> list[int]:
    """A list of positive integer ids; the CLI may give ``1,2,3``. Duplicates dropped, order kept."""
    value = params.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise _fail(key, "must be a list of positive integers.")
        value = [int(part) for part in parts]
    if not isinstance(value, list):
        raise _fail(key, f"must be a list of positive integers, not {type(value).__name__}.")
    if len(value) > max_length:
        raise _fail(key, f"must have at most {max_length} entries.")
    out: dict[int, None] = {}
    for index, entry in enumerate(value):
        # Form fields send ["4", "8"]: digit strings are ids too.
        if isinstance(entry, str) and entry.strip().isdigit():
            entry = int(entry.strip())
        if not isinstance(entry, int) or isinstance(entry, bool) or not 1 <= entry < 2**63:
            raise ValidationFailed(
                f"{key}[{index}] must be a positive integer.", field=f"{PREFIX}{key}"
            )
        out[entry] = None
    return list(out)


def timestamp(params: Mapping[str, Any], key: str) -> datetime | None:
    """An ISO date or datetime (naive means the server's time zone); None when absent."""
    value = params.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _fail(key, "must be an ISO date or datetime string.")
    try:
        # Both parsers raise ValueError for well-formed but impossible dates (2024-02-30).
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            if day is None:
                raise _fail(key, f"must be an ISO date or datetime, not {value!r}.")
            parsed = datetime(day.year, day.month, day.day)
    except ValueError as exc:
        raise _fail(key, f"is not a real date: {exc}.")
    return make_aware(parsed) if is_naive(parsed) else parsed


# --- model folders ------------------------------------------------------------------


def model_roots() -> list[Path]:
    """The folders an admin allows models to be loaded from (``BALLOT_MODEL_ROOTS``)."""
    return [Path(root).expanduser().resolve() for root in settings.BALLOT_MODEL_ROOTS]


def model_folder(name: str, *, allowed_ids: Collection[str] = ()) -> str | None:
    """Resolve a model name from job parameters to a folder under a configured root.

    ``name`` is one of ``allowed_ids`` (returned as is) or a path relative to a root
    in ``BALLOT_MODEL_ROOTS``; the first root holding it as a folder wins. Absolute
    paths, ``..`` and symlinks out of a root never resolve. Returns None when
    nothing matches: callers answer with one message whether or not the path
    exists elsewhere, so the API cannot be used to probe the server's disk.
    """
    if name in allowed_ids:
        return name
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\x00" in name:
        return None
    for root in model_roots():
        candidate = (root / relative).resolve()
        if candidate.is_relative_to(root) and candidate != root and candidate.is_dir():
            return str(candidate)
    return None


def model_name(params: Mapping[str, Any], key: str, *, allowed_ids: Collection[str] = ()) -> Any:
    """Check a model parameter: a name under a configured model root (or an allowed id)."""
    value = params.get(key)
    if value in (None, ""):
        return None
    message = (
        f"{key} must name a model folder relative to one of the model roots the "
        "administrator configured (BALLOT_MODEL_ROOTS)"
        + (f", or be one of {', '.join(allowed_ids)}." if allowed_ids else ".")
    )
    if not isinstance(value, str) or len(value) > MAX_STRING_LENGTH:
        raise ValidationFailed(message, field=f"{PREFIX}{key}")
    if model_folder(value, allowed_ids=allowed_ids) is None:
        raise ValidationFailed(message, field=f"{PREFIX}{key}")
    return value

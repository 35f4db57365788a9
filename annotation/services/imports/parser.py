"""From JSONL lines to parsed items, with line-numbered errors: no ORM, no models.

``items_parse`` decodes each line (size, UTF-8 and the JSON limits of API bodies),
finds its shape and hands it to that shape's parser
(:mod:`~annotation.services.imports.formats`). The other steps before writing
are here too and as pure: merging a file's repeated lines
(``items_merge_duplicates``), keying id-less lines on their prompt
(``items_derive_ids``) and the fingerprint that tells an edited line from an
unchanged one (``item_fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from annotation.errors import ValidationFailed
from annotation.parsers import json_loads_strict
from annotation.services.imports.formats import PARSERS, LineError, ParsedItem, detect_format

FORMATS = ("auto", "native", "trl", "hh", "ranked", "ratings")
MAX_REPORTED_ERRORS = 20

Progress = Callable[[str, int, int], None]


def _decode(raw: bytes | str, line: int) -> dict:
    limit = int(settings.BALLOT_IMPORT_MAX_LINE_BYTES)
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", errors="replace"))
    if size > limit:
        raise LineError(
            f"The line is {size} bytes; a line may hold at most {limit} (BALLOT_IMPORT_MAX_LINE_BYTES)."
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise LineError("The line is not valid UTF-8.")
    try:
        # The same limits as API bodies: no NaN/Infinity, 64-bit integers, bounded nesting, no NUL.
        row = json_loads_strict(text)
    except ValidationFailed as exc:
        raise LineError(exc.detail, None if exc.field == "body" else exc.field)
    if not isinstance(row, dict):
        raise LineError("Each line must be a JSON object.")
    return row


def items_parse(
    lines: Iterable[bytes | str],
    *,
    fmt: str = "auto",
    progress: Progress | None = None,
    skip_invalid: bool = False,
) -> tuple[str, list[ParsedItem], int, list[dict]]:
    """Parse every line into ``(format, items, line count, skipped lines)``.

    Raises ``ValidationFailed`` listing bad lines (up to 20) with their reasons; with
    ``skip_invalid`` bad lines are left out instead and returned as the fourth element.
    """
    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}.", field="format")
    items: list[ParsedItem] = []
    errors: list[dict] = []
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not (raw.strip() if isinstance(raw, (bytes, str)) else raw):
            continue
        count += 1
        try:
            row = _decode(raw, number)
            line_fmt = detect_format(row) if fmt == "auto" else fmt
            parsed = PARSERS[line_fmt](row, number)
            if row.get("external_id", row.get("id")) is None:
                parsed.derived_id, parsed.legacy_id = True, parsed.external_id
            items.append(parsed)
            fmt = line_fmt
        except LineError as exc:
            where = f"line {number}" + (f": {exc.field}" if exc.field else "")
            errors.append({"line": number, "field": where, "detail": exc.reason})
            if len(errors) >= MAX_REPORTED_ERRORS and not skip_invalid:
                break
        if progress and count % 1000 == 0:
            progress("parse", count, 0)
    if errors and not skip_invalid:
        first = errors[0]
        raise ValidationFailed(
            f"line {first['line']}: {first['detail']} ({len(errors)} bad line(s) shown; nothing was imported)",
            field=first["field"],
            errors=errors,
        )
    if count == 0:
        raise ValidationFailed("The file has no lines to import.", field="file")
    return ("native" if fmt == "auto" else fmt), items, count, errors


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_fingerprint(item: ParsedItem) -> str:
    """What a line says about its item: a re-import with another fingerprint is an edit."""
    return hashlib.sha256(
        _canonical(
            {
                "conversation": item.conversation,
                "responses": item.responses,
                "metadata": item.metadata,
                "tags": item.tags,
                "is_gold": item.is_gold,
                "gold_answer": item.gold_answer,
                "priority": item.priority,
                "labels": [
                    [label.annotator, label.source, label.judge, label.time_spent_ms, label.answers]
                    for label in item.labels
                ],
            }
        ).encode()
    ).hexdigest()


def items_derive_ids(items: Iterable[ParsedItem]) -> None:
    """Give id-less lines an id keyed on their prompt, so an edited line is the same item.

    The k-th distinct line with a given conversation gets ``sha-<conversation hash>``
    (``-k`` appended for k > 1). Editing a line's responses or labels therefore keeps
    its id, and a re-import reports it as a conflict instead of adding a new item
    beside the original. Lines that repeat an earlier line exactly were merged
    before this step, so they do not shift the count. Give lines explicit ids when
    one prompt should get unrelated items in different files.
    """
    seen: dict[str, int] = {}
    for item in items:
        if not item.derived_id:
            continue
        prompt = hashlib.sha256(_canonical(item.conversation).encode()).hexdigest()[:32]
        seen[prompt] = seen.get(prompt, 0) + 1
        item.external_id = f"sha-{prompt}" + (f"-{seen[prompt]}" if seen[prompt] > 1 else "")


def items_merge_duplicates(items: Iterable[ParsedItem]) -> tuple[dict[str, ParsedItem], int]:
    """One item per external id, and how many lines repeated an earlier one.

    A repeated line whose responses are the same and whose labels come from new
    annotators adds those labels to the first line's item (several annotators'
    files concatenated); any other repeat is counted as a duplicate and left out.
    """
    unique: dict[str, ParsedItem] = {}
    duplicates = 0
    for item in items:
        first = unique.get(item.external_id)
        if first is None:
            unique[item.external_id] = item
            continue
        known = {(label.annotator, label.source, label.judge) for label in first.labels}
        fresh = [
            label
            for label in item.labels
            if (label.annotator, label.source, label.judge) not in known
        ]
        if fresh and [r["text"] for r in item.responses] == [r["text"] for r in first.responses]:
            first.labels.extend(fresh)
        else:
            duplicates += 1
    return unique, duplicates

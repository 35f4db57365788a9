"""JSONL import of items, with their existing labels, in five shapes.

All-or-nothing: every line is parsed and validated before anything is written,
then the whole file goes in with a handful of bulk inserts in one transaction.
Bad lines are rejected with their line numbers (or, with ``skip_invalid``, left
out and counted); a preference pair with an empty reply is a bad line.

Items are keyed by ``(project, external_id)``; a line without an id gets one from
its conversation (the k-th distinct line with a given prompt is the k-th item of
that prompt, see ``items_derive_ids``). Re-importing an unchanged file changes nothing.
Each item stores a fingerprint of its line (``Item.content_hash``), so a line that
was edited since it was imported is a *conflict*: ``on_conflict`` is ``error``
(default: 409 listing the lines, nothing written), ``skip`` or ``update``.

Shapes (``fmt``):
- ``native``: ``{external_id, conversation | prompt, responses, metadata, tags, is_gold,
  gold_answer, priority, annotations: [{annotator, source, judge, time_spent_ms, answers}]}``
  where answers name questions and refer to responses by position (0-based).
- ``trl``: ``{prompt, chosen, rejected}`` with strings or message lists (explicit or implicit prompt).
- ``hh``: ``{chosen, rejected}`` HH-RLHF transcripts (``\\n\\nHuman: … \\n\\nAssistant: …``).
- ``ranked``: ``{prompt, responses, ranks? | ranking?}``; without either, responses are best first.
- ``ratings``: ``{prompt, responses | response, ratings: [{aspect: value}] | {aspect: value}, scale?}``.

The package: :mod:`~annotation.services.imports.formats` (one line's shape to a
parsed item) and :mod:`~annotation.services.imports.parser` (lines to parsed
items with line-numbered errors) use no ORM and no models;
:mod:`~annotation.services.imports.writer` (``items_import``) does the writing.
"""

from __future__ import annotations

from annotation.services.imports.formats import (
    LineError,
    ParsedItem,
    ParsedLabel,
    detect_format,
)
from annotation.services.imports.parser import (
    FORMATS,
    MAX_REPORTED_ERRORS,
    Progress,
    item_fingerprint,
    items_derive_ids,
    items_merge_duplicates,
    items_parse,
)
from annotation.services.imports.writer import BATCH, ON_CONFLICT, ImportResult, items_import

__all__ = [
    "BATCH",
    "FORMATS",
    "MAX_REPORTED_ERRORS",
    "ON_CONFLICT",
    "ImportResult",
    "LineError",
    "ParsedItem",
    "ParsedLabel",
    "Progress",
    "detect_format",
    "item_fingerprint",
    "items_derive_ids",
    "items_import",
    "items_merge_duplicates",
    "items_parse",
]

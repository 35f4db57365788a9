"""Row builders and fixed Arrow schemas for the training-data formats Ballot exports.

Pure: takes the plain records of :mod:`curation.records` and returns dicts that
match one fixed :class:`pyarrow.Schema` per (format, options), so JSONL,
Parquet and a ``datasets`` folder written from the same rows always agree.

Formats (``FORMATS``), columns in this order:

``trl_preference`` (from :class:`PreferencePair`)
    ``prompt``, ``chosen``, ``rejected`` [, ``margin``], ``external_id`` -- TRL's
    preference type with an explicit prompt, read by ``DPOTrainer``. Standard:
    three strings; conversational: ``prompt`` is the message list and
    ``chosen`` / ``rejected`` are one-message assistant lists.
``reward_pairs`` (from :class:`PreferencePair`)
    ``prompt``, ``chosen``, ``rejected``, ``margin``, ``external_id`` -- the same
    explicit-prompt preference rows plus an always-present margin, for TRL's
    ``RewardTrainer`` (which prepends ``prompt`` to both answers itself and
    subtracts ``margin`` inside the Bradley-Terry loss). We emit explicit rather
    than implicit prompts so no joiner text has to be invented and the prompt
    stays available for grouping.
``trl_unpaired`` (from :class:`PreferencePair`)
    ``prompt``, ``completion``, ``label`` (bool), ``external_id`` -- TRL's unpaired
    preference type for ``KTOTrainer``: each pair gives a desirable row for the
    chosen text and an undesirable row for the rejected one, like
    ``trl.data_utils.unpair_preference_dataset``.
``ranked_list`` (from :class:`RankedList`)
    ``prompt``, ``responses`` (best first), ``scores`` (aligned, higher better),
    ``external_id``.
``pointwise`` (from :class:`PointwiseRow`)
    ``prompt``, ``response``, ``scores`` (struct with one float64 field per aspect
    in ``ExportOptions.aspects``, null when unrated), ``scale_min``,
    ``scale_max``, ``external_id``. A struct rather than a map because
    ``datasets`` has no map feature and a struct keeps the schema explicit.
``segment_preference`` (from correction :class:`PreferencePair` with segments)
    ``prompt``, ``chosen`` (corrected response), ``rejected`` (original),
    ``segments`` (list of ``{start, end, original, corrected, category}``),
    ``external_id`` -- dense segment-level preference as in RLHF-V. ``chosen``
    and ``rejected`` stay plain strings even in conversational mode, because the
    segment offsets index into them. Free-text segment comments are left out:
    they may quote or identify the annotator.

Rules shared by all formats:

- Tied pairs are skipped: a tie says nothing about which text to prefer.
  ``segment_preference`` skips pairs without segments. A skipped record yields
  no rows; the writer counts them.
- Standard (non-conversational) prompts are the sole user message's content
  followed by ``ExportOptions.prompt_separator``; with several messages (or a
  system message) they are the conversation flattened by
  :func:`curation.conversation.conversation_text` (``role: content``
  paragraphs), the separator and the assistant turn marker ``assistant: ``, so
  ``prompt + chosen`` reads as the conversation with the answer as its last
  assistant turn. TRL concatenates prompt and answer text verbatim, so the
  separator (and the marker) is what keeps them apart. The template is
  recorded in the manifest (``options.prompt_template``).
- ``margin`` is 0.0 when unknown, never null: trainers turn it into a tensor and
  a zero margin is exactly the plain Bradley-Terry loss.
- Optional columns, appended in this order: ``annotators`` (list of keyed
  HMAC-SHA256 pseudonyms, 16 hex chars, present when ``annotator_secret`` is
  set), ``annotator_profiles`` (a JSON *string* mapping pseudonym -> the profile
  fields given, present when ``annotator_profiles`` is set; JSON because the
  selected fields differ per export and hold nested values, which would make a
  struct schema vary between exports and rows), and ``split`` (added by the
  writer in column mode).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa

from curation.conversation import ASSISTANT_CUE, conversation_text
from curation.records import PointwiseRow, PreferencePair, RankedList

Record: TypeAlias = PreferencePair | RankedList | PointwiseRow
Row: TypeAlias = dict[str, Any]

FORMATS: tuple[str, ...] = (
    "trl_preference",
    "reward_pairs",
    "trl_unpaired",
    "ranked_list",
    "pointwise",
    "segment_preference",
)

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
SEGMENT = pa.struct(
    [
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("original", pa.string()),
        ("corrected", pa.string()),
        ("category", pa.string()),
    ]
)

__all__ = [
    "FORMATS",
    "ExportOptions",
    "Record",
    "Row",
    "RowBuilder",
    "build_rows",
    "export_schema",
    "prompt_text",
    "pseudonymise",
    "record_type",
]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How records become rows. Everything except the secret and the profiles goes into the manifest."""

    conversational: bool = False
    # trl_preference only; reward_pairs always carries a margin.
    include_margin: bool = False
    prompt_separator: str = "\n\n"
    # pointwise only: the aspects, in column order, of the ``scores`` struct.
    aspects: tuple[str, ...] = ()
    # Per-export key: the same annotator gets unrelated pseudonyms in two exports,
    # so datasets published separately cannot be joined on annotators.
    annotator_secret: bytes | None = None
    # Raw annotator id (as in ``record.annotators``) -> profile fields already
    # selected by the caller. Needs ``annotator_secret`` (profiles are keyed by pseudonym).
    annotator_profiles: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.annotator_profiles is not None and self.annotator_secret is None:
            raise ValueError(
                "annotator_profiles needs annotator_secret: profiles are keyed by pseudonym"
            )
        if self.annotator_secret is not None and len(self.annotator_secret) < 16:
            raise ValueError("annotator_secret must be at least 16 bytes")

    def describe(self) -> dict[str, Any]:
        """The options as JSON-ready values for the manifest, without the secret or profile values."""
        profile_fields: list[str] | None = None
        if self.annotator_profiles is not None:
            profile_fields = sorted(
                {f for fields in self.annotator_profiles.values() for f in fields}
            )
        return {
            "conversational": self.conversational,
            "include_margin": self.include_margin,
            "prompt_separator": self.prompt_separator,
            "prompt_template": (
                "one user message: '{content}' + prompt_separator; otherwise '{role}: {content}' "
                "paragraphs joined by a blank line + prompt_separator + 'assistant: '"
            ),
            "aspects": list(self.aspects),
            "pseudonymised_annotators": self.annotator_secret is not None,
            "profile_fields": profile_fields,
        }


def pseudonymise(annotator_id: str, secret: bytes) -> str:
    """Keyed pseudonym of an annotator id: first 16 hex chars of HMAC-SHA256(secret, id).

    64 bits keep collisions negligible for any realistic annotator pool while
    staying short; without the secret the id cannot be recovered or linked.
    """
    return hmac.new(secret, str(annotator_id).encode(), hashlib.sha256).hexdigest()[:16]


class _Pseudonyms:
    """Memoised :func:`pseudonymise` for one export.

    The same few thousand annotators recur on every row and HMAC dominated the
    row-building time; the memo lives only as long as the export's builder, so
    the secret is not kept in a process-wide cache.
    """

    __slots__ = ("_memo", "_secret")

    def __init__(self, secret: bytes | None) -> None:
        self._secret = secret
        self._memo: dict[str, str] = {}

    def __call__(self, annotator_id: str) -> str:
        pseudonym = self._memo.get(annotator_id)
        if pseudonym is None:
            assert self._secret is not None
            pseudonym = self._memo[annotator_id] = pseudonymise(annotator_id, self._secret)
        return pseudonym


def prompt_text(messages: list[dict]) -> str:
    """A conversation flattened to ``role: content`` paragraphs (same as ``PreferencePair.prompt_text``).

    This is the key the writer hashes to assign splits, for every record type.
    """
    return conversation_text(messages)


def _standard_prompt(messages: list[dict], separator: str) -> str:
    if len(messages) == 1 and messages[0].get("role") == "user":
        return f"{messages[0]['content']}{separator}"
    # Role-marked turns: end with the assistant's marker so that prompt + answer
    # reads as the conversation with the answer as its next assistant turn.
    return f"{conversation_text(messages)}{separator}{ASSISTANT_CUE}"


def _messages(messages: list[dict]) -> list[dict[str, str]]:
    # Only role and content: extra message keys (names, tool calls) would make the
    # struct schema differ from row to row.
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _prompt(record: Record, options: ExportOptions) -> Any:
    if options.conversational:
        return _messages(record.prompt)
    return _standard_prompt(record.prompt, options.prompt_separator)


def _answer(text: str, options: ExportOptions) -> Any:
    return _assistant(text) if options.conversational else text


def _add_annotator_columns(
    row: Row, record: Record, options: ExportOptions, names: _Pseudonyms
) -> Row:
    if options.annotator_secret is None:
        return row
    pseudonyms = [names(a) for a in record.annotators]
    row["annotators"] = pseudonyms
    if options.annotator_profiles is not None:
        profiles = {
            pseudonym: dict(options.annotator_profiles[annotator])
            for annotator, pseudonym in zip(record.annotators, pseudonyms, strict=True)
            if annotator in options.annotator_profiles
        }
        row["annotator_profiles"] = json.dumps(
            profiles, sort_keys=True, ensure_ascii=False, default=str
        )
    return row


def _preference_rows(
    record: PreferencePair, options: ExportOptions, names: _Pseudonyms, *, margin: bool
) -> list[Row]:
    if record.tie:
        return []
    row: Row = {
        "prompt": _prompt(record, options),
        "chosen": _answer(record.chosen_text, options),
        "rejected": _answer(record.rejected_text, options),
    }
    if margin:
        row["margin"] = float(record.margin) if record.margin is not None else 0.0
    row["external_id"] = record.external_id
    return [_add_annotator_columns(row, record, options, names)]


def _trl_preference_rows(
    record: PreferencePair, options: ExportOptions, names: _Pseudonyms
) -> list[Row]:
    return _preference_rows(record, options, names, margin=options.include_margin)


def _reward_rows(record: PreferencePair, options: ExportOptions, names: _Pseudonyms) -> list[Row]:
    return _preference_rows(record, options, names, margin=True)


def _unpaired_rows(record: PreferencePair, options: ExportOptions, names: _Pseudonyms) -> list[Row]:
    if record.tie:
        return []
    prompt = _prompt(record, options)
    rows: list[Row] = []
    for text, label in ((record.chosen_text, True), (record.rejected_text, False)):
        row: Row = {
            "prompt": prompt,
            "completion": _answer(text, options),
            "label": label,
            "external_id": record.external_id,
        }
        rows.append(_add_annotator_columns(row, record, options, names))
    return rows


def _ranked_rows(record: RankedList, options: ExportOptions, names: _Pseudonyms) -> list[Row]:
    row: Row = {
        "prompt": _prompt(record, options),
        "responses": list(record.responses),
        "scores": [float(s) for s in record.scores],
        "external_id": record.external_id,
    }
    return [_add_annotator_columns(row, record, options, names)]


def _pointwise_rows(record: PointwiseRow, options: ExportOptions, names: _Pseudonyms) -> list[Row]:
    scores = {aspect: record.scores.get(aspect) for aspect in options.aspects}
    row: Row = {
        "prompt": _prompt(record, options),
        "response": record.response,
        "scores": {a: (float(v) if v is not None else None) for a, v in scores.items()},
        "scale_min": float(record.scale[0]),
        "scale_max": float(record.scale[1]),
        "external_id": record.external_id,
    }
    return [_add_annotator_columns(row, record, options, names)]


def _segment_rows(record: PreferencePair, options: ExportOptions, names: _Pseudonyms) -> list[Row]:
    if record.tie or not record.segments:
        return []
    row: Row = {
        "prompt": _prompt(record, options),
        "chosen": record.chosen_text,
        "rejected": record.rejected_text,
        "segments": [
            {
                "start": int(s["start"]),
                "end": int(s["end"]),
                "original": str(s.get("original", "")),
                "corrected": str(s.get("corrected", "")),
                "category": str(s.get("category", "")),
            }
            for s in record.segments
        ],
        "external_id": record.external_id,
    }
    return [_add_annotator_columns(row, record, options, names)]


_BUILDERS: dict[str, tuple[type, Callable[[Any, ExportOptions, _Pseudonyms], list[Row]]]] = {
    "trl_preference": (PreferencePair, _trl_preference_rows),
    "reward_pairs": (PreferencePair, _reward_rows),
    "trl_unpaired": (PreferencePair, _unpaired_rows),
    "ranked_list": (RankedList, _ranked_rows),
    "pointwise": (PointwiseRow, _pointwise_rows),
    "segment_preference": (PreferencePair, _segment_rows),
}


def _check_format(format_name: str) -> None:
    if format_name not in _BUILDERS:
        raise ValueError(f"unknown export format {format_name!r}; expected one of {FORMATS}")


def record_type(format_name: str) -> type:
    """The record class a format is built from."""
    _check_format(format_name)
    return _BUILDERS[format_name][0]


class RowBuilder:
    """Builds one format's rows under fixed options; reuse one per export.

    Holds the per-export pseudonym memo, so build every row of an export with
    the same builder.
    """

    def __init__(self, format_name: str, options: ExportOptions) -> None:
        _check_format(format_name)
        self.format_name = format_name
        self.options = options
        self.schema = export_schema(format_name, options)
        self._expected, self._builder = _BUILDERS[format_name]
        self._names = _Pseudonyms(options.annotator_secret)

    def rows(self, record: Record) -> list[Row]:
        """The rows (zero, one or two) a record contributes; see the module docstring."""
        if not isinstance(record, self._expected):
            raise TypeError(
                f"{self.format_name} is built from {self._expected.__name__}, got {type(record).__name__}"
            )
        return self._builder(record, self.options, self._names)


def build_rows(format_name: str, record: Record, options: ExportOptions) -> list[Row]:
    """The rows one record contributes to a format (convenience for :class:`RowBuilder`)."""
    return RowBuilder(format_name, options).rows(record)


def export_schema(
    format_name: str, options: ExportOptions, *, split_column: bool = False
) -> pa.Schema:
    """The exact Arrow schema of a format's rows under these options."""
    _check_format(format_name)
    prompt_type = MESSAGES if options.conversational else pa.string()
    answer_type = MESSAGES if options.conversational else pa.string()
    fields: list[pa.Field]
    if format_name in ("trl_preference", "reward_pairs"):
        fields = [
            pa.field("prompt", prompt_type),
            pa.field("chosen", answer_type),
            pa.field("rejected", answer_type),
        ]
        if format_name == "reward_pairs" or options.include_margin:
            fields.append(pa.field("margin", pa.float64()))
    elif format_name == "trl_unpaired":
        fields = [
            pa.field("prompt", prompt_type),
            pa.field("completion", answer_type),
            pa.field("label", pa.bool_()),
        ]
    elif format_name == "ranked_list":
        fields = [
            pa.field("prompt", prompt_type),
            pa.field("responses", pa.list_(pa.string())),
            pa.field("scores", pa.list_(pa.float64())),
        ]
    elif format_name == "pointwise":
        if not options.aspects:
            raise ValueError("the pointwise format needs ExportOptions.aspects")
        fields = [
            pa.field("prompt", prompt_type),
            pa.field("response", pa.string()),
            pa.field("scores", pa.struct([(a, pa.float64()) for a in options.aspects])),
            pa.field("scale_min", pa.float64()),
            pa.field("scale_max", pa.float64()),
        ]
    else:  # segment_preference: chosen/rejected stay plain text because segment offsets index into them
        fields = [
            pa.field("prompt", prompt_type),
            pa.field("chosen", pa.string()),
            pa.field("rejected", pa.string()),
            pa.field("segments", pa.list_(SEGMENT)),
        ]
    fields.append(pa.field("external_id", pa.string()))
    if options.annotator_secret is not None:
        fields.append(pa.field("annotators", pa.list_(pa.string())))
        if options.annotator_profiles is not None:
            fields.append(pa.field("annotator_profiles", pa.string()))
    if split_column:
        fields.append(pa.field("split", pa.string()))
    return pa.schema(fields)

"""The plain rows that :mod:`curation.pairs.loading` reads a chunk of items into.

No Django: the pair builder works on these, not on model instances, because
building model instances (``prefetch_related``) costs about a hundred times more
than the voting itself on large exports. The answer rows are named tuples whose
fields are the columns the loader reads, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class PairwiseRow(NamedTuple):
    annotation_id: int
    question_id: int
    chosen_id: int
    rejected_id: int
    tie: bool
    strength: int | None


class RankingRow(NamedTuple):
    annotation_id: int
    question_id: int
    ranking: list[list[int]]


class RatingRow(NamedTuple):
    annotation_id: int
    question_id: int
    response_id: int
    aspect: str
    value: float


class CorrectionRow(NamedTuple):
    annotation_id: int
    question_id: int
    response_id: int
    start: int
    end: int
    original_text: str
    corrected_text: str
    category: str
    comment: str


@dataclass(slots=True)
class ResponseRow:
    id: int
    text: str


@dataclass(slots=True)
class AnnotationRow:
    """One selected annotation with its answers (only the fields pseudonyms and votes need)."""

    id: int
    annotator_id: int | None
    source: str
    judge_name: str
    pairwise_answers: list[PairwiseRow] = field(default_factory=list)
    ranking_answers: list[RankingRow] = field(default_factory=list)
    rating_answers: list[RatingRow] = field(default_factory=list)
    correction_answers: list[CorrectionRow] = field(default_factory=list)


@dataclass(slots=True)
class ItemRow:
    """One item with its responses (by position) and its selected annotations (by id)."""

    id: int
    external_id: str
    conversation: list[dict]
    tags: list[str]
    responses: list[ResponseRow] = field(default_factory=list)
    annotations: list[AnnotationRow] = field(default_factory=list)
    # (question name, "<lower id>-<higher id>") -> (class, confidence) of a reliability fit
    posteriors: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)

"""Which annotations feed pairs: the ``Selection`` and its strict parsing from job and export params."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from annotation.errors import ValidationFailed
from annotation.services.projects import PROFILE_FIELDS
from curation import params as check
from curation.pairs.aggregation import AGGREGATIONS

SELECTION_FIELDS = (
    "source",
    "aggregation",
    "min_agreement",
    "rating_threshold",
    "rating_aspect",
    "tags",
    "created_after",
    "created_before",
    "annotator_filter",
    "questions",
    "include_ties",
)
SOURCES = ("human", "ai", "both")


@dataclass(frozen=True)
class Selection:
    """Which annotations feed pairs. Every field is optional; the defaults take all human labels."""

    source: str = "human"
    aggregation: str = "majority"
    min_agreement: float = 0.0
    rating_threshold: float = 0.25  # on the 0-1 normalised scale
    rating_aspect: str | None = None  # None: the mean over aspects
    tags: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    annotator_filter: dict = field(default_factory=dict)  # profile field -> value or list of values
    item_ids: frozenset[int] | None = None
    questions: tuple[str, ...] = ()
    include_ties: bool = True
    # The reliability job whose posteriors label pairs (aggregation "reliability"); None:
    # the project's latest succeeded one, looked up when the items are read.
    reliability_job: int | None = None

    def describe(self) -> dict:
        return {
            "source": self.source,
            "aggregation": self.aggregation,
            "min_agreement": self.min_agreement,
            "rating_threshold": self.rating_threshold,
            "rating_aspect": self.rating_aspect,
            "tags": list(self.tags),
            "created_after": self.created_after.isoformat() if self.created_after else None,
            "created_before": self.created_before.isoformat() if self.created_before else None,
            "annotator_filter": self.annotator_filter,
            "items": len(self.item_ids) if self.item_ids is not None else None,
            "questions": list(self.questions),
            "include_ties": self.include_ties,
            **({"reliability_job": self.reliability_job} if self.reliability_job else {}),
        }


def selection_from_params(params: dict, *, item_ids: Iterable[int] | None = None) -> Selection:
    """Build a Selection from API/CLI parameters, checking each strictly.

    Raises ``ValidationFailed`` naming ``params.<key>`` and the reason: wrong types,
    impossible dates and out-of-range numbers are refused here, before a job is stored.
    """
    values = {"source": "human", "aggregation": "majority", **params}
    source = check.choice(values, "source", SOURCES)
    aggregation = check.choice(values, "aggregation", AGGREGATIONS)
    min_agreement = check.number(
        {"min_agreement": 0.0, **params}, "min_agreement", low=0.0, high=1.0
    )
    threshold = check.number(
        {"rating_threshold": 0.25, **params}, "rating_threshold", low=0.0, high=1.0
    )
    tags = check.string_list(params, "tags")
    questions = check.string_list(params, "questions")
    rating_aspect = check.string(params, "rating_aspect", nullable=True) or None
    include_ties = check.boolean({"include_ties": True, **params}, "include_ties")
    annotator_filter = params.get("annotator_filter") or {}
    if not isinstance(annotator_filter, dict):
        raise ValidationFailed(
            "annotator_filter maps profile fields to values.", field="params.annotator_filter"
        )
    scalar = (str, int, float, bool)
    for key, value in annotator_filter.items():
        if key not in PROFILE_FIELDS or key in (
            "stated_preferences",
            "self_description",
            "languages",
            "expertise",
        ):
            raise ValidationFailed(
                f"Cannot filter annotators by {key!r}.", field=f"params.annotator_filter.{key}"
            )
        values_ok = (
            all(isinstance(v, scalar) for v in value) and len(value) <= check.MAX_LIST_LENGTH
            if isinstance(value, list)
            else isinstance(value, scalar)
        )
        if not values_ok:
            raise ValidationFailed(
                f"annotator_filter.{key} must be a value or a list of values.",
                field=f"params.annotator_filter.{key}",
            )
    created_after = check.timestamp(params, "created_after")
    created_before = check.timestamp(params, "created_before")
    if created_after and created_before and created_after >= created_before:
        raise ValidationFailed(
            "created_after must be earlier than created_before.", field="params.created_after"
        )
    return Selection(
        source=source,
        aggregation=aggregation,
        min_agreement=min_agreement,
        rating_threshold=threshold,
        rating_aspect=rating_aspect,
        tags=tuple(tags),
        created_after=created_after,
        created_before=created_before,
        annotator_filter=annotator_filter,
        item_ids=frozenset(item_ids) if item_ids is not None else None,
        questions=tuple(questions),
        include_ties=include_ties,
    )

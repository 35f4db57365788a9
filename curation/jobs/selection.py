"""The annotation selection, as job parameters shared by every kind that reads pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotation.errors import ValidationFailed
from curation.jobs.params import (
    JobParams,
    boolean,
    choice,
    default_of,
    mapping,
    number,
    string,
    string_list,
)
from curation.pairs import (
    AGGREGATIONS,
    SELECTION_FIELDS,
    SOURCES,
    Selection,
    reliability_job_latest,
    selection_from_params,
)

if TYPE_CHECKING:
    from annotation.models import Project


@dataclass(frozen=True)
class SelectionParams(JobParams):
    """Which annotations feed the pairs (all human labels by default)."""

    # Checked together by ``selection_from_params`` (``grouped``), the one place
    # that knows how these fields combine (dates in order, profile fields allowed).
    source: str = choice(
        default_of(Selection, "source"),
        SOURCES,
        help="Whose labels: human annotators, LM judges (ai) or both.",
        grouped=True,
    )
    aggregation: str = choice(
        default_of(Selection, "aggregation"),
        AGGREGATIONS,
        help="How several annotators' votes on one pair combine: the majority direction, "
        "only unanimous pairs, every vote as its own pair, or the posterior label of the "
        "latest reliability job (pairwise questions; others count like majority).",
        grouped=True,
    )
    min_agreement: float = number(
        default_of(Selection, "min_agreement"),
        low=0.0,
        high=1.0,
        help="Drop pairs whose share of agreeing votes is below this.",
        grouped=True,
    )
    rating_threshold: float = number(
        default_of(Selection, "rating_threshold"),
        low=0.0,
        high=1.0,
        help="Two rated responses make a pair when their scores (scaled to 0-1) differ by "
        "at least this.",
        grouped=True,
    )
    rating_aspect: str | None = string(
        default_of(Selection, "rating_aspect"),
        nullable=True,
        help="Rating aspect that orders responses; null for the mean over aspects.",
        grouped=True,
    )
    tags: list[str] = string_list(
        list(default_of(Selection, "tags")),
        help="Only items carrying one of these tags (empty: every item).",
        grouped=True,
    )
    created_after: str | None = string(
        default_of(Selection, "created_after"),
        nullable=True,
        date_time=True,
        help="Only annotations made after this ISO date or datetime.",
        grouped=True,
    )
    created_before: str | None = string(
        default_of(Selection, "created_before"),
        nullable=True,
        date_time=True,
        help="Only annotations made before this ISO date or datetime.",
        grouped=True,
    )
    annotator_filter: dict = mapping(
        default_of(Selection, "annotator_filter"),
        help="Only annotators whose profile matches: profile field -> value or list of values.",
        grouped=True,
    )
    questions: list[str] = string_list(
        list(default_of(Selection, "questions")),
        help="Only these questions, by name (empty: every question).",
        grouped=True,
    )
    include_ties: bool = boolean(
        default_of(Selection, "include_ties"),
        help="Keep tied pairs (scoring jobs leave them out of training either way).",
        grouped=True,
    )

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        super().check(values, project=project)
        selection = selection_from_params(_selection_values(values))
        if (
            selection.aggregation == "reliability"
            and reliability_job_latest(project=project) is None
        ):
            raise ValidationFailed(
                "aggregation 'reliability' needs a succeeded reliability job in this project; "
                "run one first.",
                field="params.aggregation",
            )
        # Store the checked values (``"a, b"`` from the command line becomes ["a", "b"]);
        # dates stay the ISO text that was given, which is what JSON can hold.
        values.update(
            min_agreement=selection.min_agreement,
            rating_threshold=selection.rating_threshold,
            rating_aspect=selection.rating_aspect,
            tags=list(selection.tags),
            questions=list(selection.questions),
        )

    def selection(self, *, item_ids: Iterable[int] | None = None) -> Selection:
        """The checked :class:`~curation.pairs.Selection` these parameters stand for."""
        values = {name: getattr(self, name) for name in SELECTION_FIELDS}
        return selection_from_params(values, item_ids=item_ids)

    def selection_values(self) -> dict[str, Any]:
        """The selection fields as stored, e.g. for an export's manifest."""
        return {name: getattr(self, name) for name in sorted(SELECTION_FIELDS)}


def _selection_values(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in SELECTION_FIELDS if name in values}

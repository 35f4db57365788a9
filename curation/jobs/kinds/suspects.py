"""Suspect labels: pairs whose label a held-out reward model contradicts with confidence.

The same scoring as FiFA (one ``PairScore`` per pair, with ``suspect`` and
``suspect_confidence``), launched for review rather than for filtering. With
``review`` the items of the flagged pairs go to the review queue when the scores
are stored (the job's results page offers the same as an action afterwards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curation.jobs.base import JobKindSpec, Report
from curation.jobs.kinds import fifa
from curation.jobs.params import boolean
from curation.models import Job, JobKind
from curation.review.services import review_entries_from_flagged


@dataclass(frozen=True)
class SuspectParams(fifa.ScoringParams):
    """FiFA's scoring parameters, and whether to queue the flagged items for review."""

    review: bool = boolean(
        False, help="Put the items of the flagged pairs in the review queue when the job finishes."
    )


def run(job: Job, report: Report) -> dict[str, Any]:
    result = fifa.run(job, report)
    if SuspectParams.from_job(job).review:
        # Idempotent like the scores: an item with an open entry from this feed keeps it.
        result["review_entries"] = review_entries_from_flagged(job=job, user=job.created_by)
    return result


SPEC = JobKindSpec(
    kind=JobKind.SUSPECTS.value,
    summary="Flag pairs whose label the out-of-fold reward model contradicts (same scores as FiFA).",
    params=SuspectParams,
    queue="gpu",
    writes=(*fifa.SPEC.writes, "ReviewEntry per flagged item (with review)"),
    run=run,
)

"""Reads of reliability jobs: a job's annotator table and scatter data, the latest reliabilities.

Annotators appear by their project pseudonym; usernames only where the caller may
reveal them (admins). Each fit (a pairwise question, or one aspect of a rating
question) is reported apart, since one person can be careful on one and not the other.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from annotation.pseudonyms import pseudonym
from curation.models import AnnotatorReliability, Job, JobKind
from curation.pairs import reliability_job_latest

if TYPE_CHECKING:
    from annotation.models import Project


def _correlation(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 4)


def job_reliability_rows(*, job: Job, reveal_usernames: bool) -> list[dict[str, Any]]:
    """One row per annotator and fit, most reliable first within each fit."""
    salt = str(job.project_id)
    rows = (
        AnnotatorReliability.objects.filter(job=job)
        .order_by("question", "aspect", "-reliability", "annotator_id")
        .values(
            "question",
            "aspect",
            "annotator_id",
            "annotator__username",
            "reliability",
            "votes",
            "agreement",
        )
    )
    out = []
    for row in rows:
        entry = {
            "question": row["question"],
            "aspect": row["aspect"] or None,
            "annotator": pseudonym(row["annotator_id"], salt),
            "reliability": round(row["reliability"], 4),
            "votes": row["votes"],
            "agreement_with_majority": None
            if row["agreement"] is None
            else round(row["agreement"], 4),
        }
        if reveal_usernames:
            entry["username"] = row["annotator__username"]
        out.append(entry)
    return out


def job_reliability_chart(*, job: Job, reveal_usernames: bool = False) -> dict[str, Any]:
    """Per fit: each annotator's reliability against their agreement with the majority of
    the others (annotators with no vote another one could confirm have no agreement and
    are listed without a point), and the Pearson correlation of the two."""
    fits: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    for row in job_reliability_rows(job=job, reveal_usernames=reveal_usernames):
        fits[(row["question"], row["aspect"])].append(row)
    out = []
    for (question, aspect), annotators in fits.items():
        points = [a for a in annotators if a["agreement_with_majority"] is not None]
        out.append(
            {
                "question": question,
                "aspect": aspect,
                "annotators": annotators,
                "correlation": _correlation(
                    [a["reliability"] for a in points],
                    [a["agreement_with_majority"] for a in points],
                ),
            }
        )
    return {
        "job": job.id,
        "kind": job.kind,
        "fitted": job.kind == JobKind.RELIABILITY and job.status == "succeeded",
        "model": (job.result or {}).get("model"),
        "fits": out,
    }


def latest_reliability_by_annotator(*, project: Project) -> tuple[int | None, dict[int, float]]:
    """The latest succeeded reliability job of the project and, per annotator id, their
    reliability in it: the vote-weighted mean over the fits they took part in."""
    job = reliability_job_latest(project=project)
    if job is None:
        return None, {}
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for annotator_id, reliability, votes in AnnotatorReliability.objects.filter(
        job=job
    ).values_list("annotator_id", "reliability", "votes"):
        sums[annotator_id][0] += reliability * votes
        sums[annotator_id][1] += votes
    return job.id, {who: round(total / votes, 4) for who, (total, votes) in sums.items() if votes}

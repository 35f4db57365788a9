"""Reads for the jobs pages: the job list with who launched each job, and a scoring job's charts.

The charts are computed here from the job's ``PairScore`` rows (histogram bins and
per-group quartiles), so a page or a client draws a project of any size from a few
hundred numbers instead of one value per pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.cache import cache

from annotation.pseudonyms import pseudonym
from curation.models import Job, JobKind, PairScore

if TYPE_CHECKING:
    from annotation.models import Project

SCORED_KINDS = (JobKind.FIFA.value, JobKind.SUSPECTS.value)
ACTIVE = ("queued", "running")
GROUP_METRICS = ("margin", "quality", "diversity", "importance")
DEFAULT_BINS = 30
MAX_BINS = 200
SUSPECTS_SHOWN = 200
SNIPPET_CHARS = 160
CACHE_SECONDS = 24 * 3600


def creator_label(
    *, user_id: int | None, username: str | None, project_id: int, reveal: bool
) -> str:
    """Who launched a job, by the pseudonym rule: admins see the username too, curators never."""
    if user_id is None:
        return "–"
    name = pseudonym(user_id, str(project_id))
    return f"{name} ({username})" if reveal and username else name


def job_rows_for_page(*, project: Project, reveal_usernames: bool, limit: int = 100) -> list[dict]:
    """The project's latest jobs, newest first, as the list page shows them."""
    rows = (
        Job.objects.filter(project=project)
        .order_by("-created_at", "-id")
        .values(
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "created_by_id",
            "created_by__username",
        )[:limit]
    )
    labels = dict(JobKind.choices)
    out = []
    for row in rows:
        row["label"] = labels.get(row["kind"], row["kind"])
        row["percent"] = round(100 * (row["progress"] or 0.0))
        row["active"] = row["status"] in ACTIVE
        row["created_by"] = creator_label(
            user_id=row.pop("created_by_id"),
            username=row.pop("created_by__username"),
            project_id=project.id,
            reveal=reveal_usernames,
        )
        out.append(row)
    return out


def job_creator_for_page(*, job: Job, reveal_usernames: bool) -> str:
    user = job.created_by
    return creator_label(
        user_id=user.pk if user else None,
        username=user.get_username() if user else None,
        project_id=job.project_id,
        reveal=reveal_usernames,
    )


def _box(values: np.ndarray) -> dict[str, Any]:
    """Count, mean and the five numbers of a box plot; nulls when the group is empty."""
    if not values.size:
        return {
            "n": 0,
            "mean": None,
            "min": None,
            "q1": None,
            "median": None,
            "q3": None,
            "max": None,
        }
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "max": float(values.max()),
    }


def _histogram(values: np.ndarray, kept: np.ndarray, bins: int) -> dict[str, Any]:
    if not values.size:
        return {"edges": [], "kept": [], "dropped": []}
    low, high = float(values.min()), float(values.max())
    if low == high:
        # One value everywhere: one bin around it rather than numpy's unit-wide default.
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    kept_counts, _ = np.histogram(values[kept], bins=edges)
    dropped_counts, _ = np.histogram(values[~kept], bins=edges)
    return {
        "edges": [float(e) for e in edges],
        "kept": [int(c) for c in kept_counts],
        "dropped": [int(c) for c in dropped_counts],
    }


def job_score_charts(*, job: Job, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The charts of a FiFA or suspect-labels job from its ``PairScore`` rows.

    ``importance``: ``bins`` equal-width bins from the lowest to the highest
    importance (the last bin closed, as numpy counts), kept and dropped pairs
    counted apart. ``groups``: for margin, quality, diversity and importance, the
    count, mean and five-number summary (linear-interpolated quartiles) of the kept
    and of the dropped pairs. Jobs of other kinds have ``scored`` false and no data.

    A succeeded job's scores change only when it runs again, which moves its
    ``finished_at`` and ``attempts``; so its charts are cached under those.
    """
    if job.status != "succeeded":
        return _score_charts(job, bins)
    # created_at too: a database rolled back (tests) or restored may hand out a job id again.
    finished = job.finished_at.isoformat() if job.finished_at else ""
    key = f"job-charts:{job.id}:{job.created_at.isoformat()}:{job.attempts}:{finished}:{bins}"
    value = cache.get(key)
    if value is None:
        value = _score_charts(job, bins)
        cache.set(key, value, CACHE_SECONDS)
    return value


def _score_charts(job: Job, bins: int) -> dict[str, Any]:
    scored = job.kind in SCORED_KINDS
    rows = (
        list(PairScore.objects.filter(job=job).values_list("kept", *GROUP_METRICS))
        if scored
        else []
    )
    # One float array: column 0 is kept (1.0 or 0.0), then one column per metric.
    table = np.array(rows, dtype=np.float64).reshape(-1, 1 + len(GROUP_METRICS))
    kept = table[:, 0] > 0.5
    column = {name: table[:, index + 1] for index, name in enumerate(GROUP_METRICS)}
    return {
        "job": job.id,
        "kind": job.kind,
        "scored": scored,
        "pairs": len(rows),
        "kept": int(kept.sum()),
        "importance": _histogram(column["importance"], kept, bins),
        "groups": [
            {
                "metric": name,
                "kept": _box(column[name][kept]),
                "dropped": _box(column[name][~kept]),
            }
            for name in GROUP_METRICS
        ],
    }


def _snippet(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def job_suspect_rows(*, job: Job, limit: int = SUSPECTS_SHOWN) -> list[dict[str, Any]]:
    """The job's suspect pairs, most confident first, with the item's title and both responses' openings."""
    scores = (
        PairScore.objects.filter(job=job, suspect=True)
        .order_by("-suspect_confidence", "id")
        .values(
            "id",
            "item_id",
            "item__title",
            "item__external_id",
            "question",
            "suspect_confidence",
            "margin",
            "agreement",
            "chosen_response__text",
            "rejected_response__text",
        )[:limit]
    )
    return [
        {
            "rank": rank,
            "id": row["id"],
            "item_id": row["item_id"],
            "title": row["item__title"] or row["item__external_id"],
            "question": row["question"],
            "confidence": row["suspect_confidence"],
            "margin": row["margin"],
            "agreement": row["agreement"],
            "chosen": _snippet(row["chosen_response__text"]),
            "rejected": _snippet(row["rejected_response__text"]),
        }
        for rank, row in enumerate(scores, start=1)
    ]


def job_suspect_count(*, job: Job) -> int:
    return PairScore.objects.filter(job=job, suspect=True).count()

"""Reads of explanations, scoped to the caller: the list, one explanation, one feature's examples."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.errors import NotFound, ValidationFailed
from annotation.models import Item, Project, Response
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.conversation import conversation_text
from curation.explanations.highlight import text_spans
from curation.models import (
    Explanation,
    ExplanationActivation,
    ExplanationFeature,
    ExplanationPair,
    Job,
    JobKind,
)

MAX_TOP = 10_000


def explanation_list_for(*, project: Project) -> QuerySet[Explanation]:
    """A project's explanations, newest first, with their jobs."""
    return Explanation.objects.filter(project=project).select_related("job")


def explanation_get_for(*, user: AbstractBaseUser, project_id: int, job_id: int) -> Explanation:
    """The explanation written by job ``job_id``; 404 when the job is not a finished explain job."""
    project, _ = project_get_for(user=user, project_id=project_id, roles=STAFF_ROLES)
    return explanation_of_job(project=project, job_id=job_id)


def explanation_of_job(*, project: Project, job_id: int) -> Explanation:
    explanation = (
        Explanation.objects.filter(project=project, job_id=job_id).select_related("job").first()
    )
    if explanation is None:
        raise NotFound("No explanation for this job (not an explain job, or not finished).")
    return explanation


def explanation_latest(*, project: Project) -> Explanation | None:
    return explanation_list_for(project=project).order_by("-job_id").first()


def feature_list(*, explanation: Explanation) -> QuerySet[ExplanationFeature]:
    return explanation.features.order_by("rank", "index")


def feature_get(*, explanation: Explanation, index: int) -> ExplanationFeature:
    feature = explanation.features.filter(index=index).first()
    if feature is None:
        raise NotFound(f"The explanation has no feature {index}.")
    return feature


def feature_selection_check(
    top: Any, threshold: Any, *, prefix: str = ""
) -> tuple[int | None, float | None]:
    """``top`` (1-10000) and ``threshold`` (> 0) as given; at least one. 400 naming the key."""
    if top is not None and (
        isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP
    ):
        raise ValidationFailed(
            f"{prefix}top must be a whole number from 1 to {MAX_TOP}.", field=f"{prefix}top"
        )
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ValidationFailed(
            f"{prefix}threshold must be a number above 0 (an activation's size).",
            field=f"{prefix}threshold",
        )
    if top is None and threshold is None:
        raise ValidationFailed(
            f"Give {prefix}top (the N most active pairs) or {prefix}threshold (every pair "
            "whose activation is at least this large).",
            field=f"{prefix}top",
        )
    return top, float(threshold) if threshold is not None else None


def feature_top_pairs(
    *, explanation: Explanation, feature: int, top: int | None, threshold: float | None
) -> list[dict[str, Any]]:
    """The pairs where ``feature`` is most active, strongest first, one row per pair.

    A pair read once per annotator counts once (its strongest activation). ``top``
    keeps the first N pairs, ``threshold`` those whose activation's size reaches it;
    with both, the first N of those.
    """
    rows = ExplanationActivation.objects.filter(explanation=explanation, feature=feature)
    if threshold is not None:
        rows = rows.filter(magnitude__gte=threshold)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in (
        rows.order_by("-magnitude", "id")
        .values("activation", "pair__pair_ref", "pair__item_id", "pair__question")
        .iterator(chunk_size=2000)
    ):
        ref = row["pair__pair_ref"]
        if ref in seen:
            continue
        seen.add(ref)
        out.append(
            {
                "pair_ref": ref,
                "item_id": row["pair__item_id"],
                "question": row["pair__question"],
                "activation": round(row["activation"], 6),
            }
        )
        if top is not None and len(out) >= top:
            break
    return out


def explanation_job_check(*, project: Project, job_id: Any, field: str) -> Explanation:
    """The explanation of a finished explain job of ``project``, or a 400 naming ``field``."""
    job = Job.objects.filter(pk=job_id, project=project, kind=JobKind.EXPLAIN).first()
    if job is None:
        raise ValidationFailed(f"{field} must be an explain job of this project.", field=field)
    explanation = Explanation.objects.filter(job=job).first()
    if explanation is None:
        raise ValidationFailed(
            f"Explain job {job.id} has not finished ({job.status}).", field=field
        )
    return explanation


def feature_examples(*, feature: ExplanationFeature) -> list[dict[str, Any]]:
    """The feature's examples with their texts, read from the side the feature is high on.

    ``left`` is response A unless the example is ``swapped`` (a negative activation),
    then B; ``preferred`` says which side the annotator chose. Each side carries the
    spans of the feature's high and low n-grams as character offsets.
    """
    examples = [e for e in feature.examples if isinstance(e, dict) and e.get("pair_id")]
    pairs = {
        p.pair_id: p
        for p in ExplanationPair.objects.filter(
            explanation_id=feature.explanation_id, pair_id__in=[e["pair_id"] for e in examples]
        )
    }
    response_ids = {rid for p in pairs.values() for rid in (p.response_a_id, p.response_b_id)}
    texts = dict(Response.objects.filter(id__in=response_ids).values_list("id", "text"))
    items = {
        item.id: item
        for item in Item.objects.filter(id__in={p.item_id for p in pairs.values()}).only(
            "id", "external_id", "title", "conversation"
        )
    }
    out = []
    for example in examples:
        pair = pairs.get(example["pair_id"])
        if pair is None:
            continue
        swapped = bool(example.get("swapped"))
        a, b = texts.get(pair.response_a_id, ""), texts.get(pair.response_b_id, "")
        left, right = (b, a) if swapped else (a, b)
        left_id, right_id = (
            (pair.response_b_id, pair.response_a_id)
            if swapped
            else (pair.response_a_id, pair.response_b_id)
        )
        a_preferred = pair.label == 1
        item = items.get(pair.item_id)
        out.append(
            {
                "pair_id": pair.pair_id,
                "item": pair.item_id,
                "external_id": item.external_id if item else "",
                "title": getattr(item, "title", "") if item else "",
                "question": pair.question,
                "activation": example.get("activation"),
                "swapped": swapped,
                "prompt": conversation_text(item.conversation) if item else "",
                "left": {
                    "response": left_id,
                    "side": "B" if swapped else "A",
                    "text": left,
                    "preferred": a_preferred != swapped,
                    "spans": text_spans(left, high=feature.ngrams_high, low=feature.ngrams_low),
                },
                "right": {
                    "response": right_id,
                    "side": "A" if swapped else "B",
                    "text": right,
                    "preferred": a_preferred == swapped,
                    "spans": text_spans(right, high=feature.ngrams_high, low=feature.ngrams_low),
                },
            }
        )
    return out


def feature_description(feature: ExplanationFeature, *, words: int = 3) -> str:
    """The judge's name when it held up; else what the high side says more and less of."""
    if feature.name:
        return feature.name
    high = [g for g in (_gram(e) for e in feature.ngrams_high[:words]) if g]
    low = [g for g in (_gram(e) for e in feature.ngrams_low[:words]) if g]
    parts = []
    if high:
        parts.append("more " + ", ".join(f"“{g}”" for g in high))
    if low:
        parts.append("less " + ", ".join(f"“{g}”" for g in low))
    return "; ".join(parts) or f"feature {feature.index}"


def _gram(entry: object) -> str | None:
    if isinstance(entry, dict) and isinstance(entry.get("ngram"), str):
        return entry["ngram"]
    return entry if isinstance(entry, str) else None


def explanation_alpha(explanation: Explanation) -> float:
    alpha = (explanation.config or {}).get("alpha")
    return float(alpha) if isinstance(alpha, (int, float)) and 0 < alpha < 1 else 0.05

"""Writes of explanations: the rows an explain job stores, and a feature's pairs sent to review."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.errors import BallotError, ValidationFailed
from annotation.models import Item, Project
from curation.explanations.inputs import ExplainInput
from curation.explanations.selectors import (
    explanation_job_check,
    feature_get,
    feature_selection_check,
    feature_top_pairs,
)
from curation.models import (
    Explanation,
    ExplanationActivation,
    ExplanationFeature,
    ExplanationPair,
    Job,
    ReviewSource,
)
from curation.review.services import PAIRS_KEPT, review_entries_add

BATCH = 5000


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null and numpy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite(value)
    return value


def feature_rank_order(features: Sequence[Mapping[str, Any]]) -> list[int]:
    """Feature positions by the size of their coefficient, largest first (missing last)."""
    return sorted(
        range(len(features)),
        key=lambda i: (
            -abs(_finite(features[i].get("coef")) or 0.0),
            _finite(features[i].get("p_value")) or 1.0,
            int(features[i].get("index", i)),
        ),
    )


@transaction.atomic
def explanation_store(
    *,
    job: Job,
    pairs: Sequence[ExplainInput],
    pair_ids: Sequence[str],
    activations: np.ndarray,
    report: Mapping[str, Any],
    config: Mapping[str, Any],
    weights_path: str,
) -> Explanation:
    """Replace whatever an earlier attempt of ``job`` stored with this explanation.

    ``report`` is the core's ``Explanation.to_dict()`` (features, probes, groups,
    history, counts); ``pair_ids`` and ``activations`` its rows, aligned (the core may
    have dropped duplicate pairs, so they need not be every input). Only nonzero
    activations are stored. One transaction: a reader sees the old rows or the new.
    """
    Explanation.objects.filter(job=job).delete()
    explanation = Explanation.objects.create(
        job=job,
        project_id=job.project_id,
        counts=json_safe(report.get("counts") or {}),
        probes=json_safe(report.get("probes") or {}),
        history=json_safe(report.get("history") or []),
        groups=json_safe(report.get("groups") or []),
        config=json_safe(config),
        weights_path=weights_path,
    )
    by_id = {p.pair_id: p for p in pairs}
    stored = ExplanationPair.objects.bulk_create(
        [
            ExplanationPair(
                explanation=explanation,
                pair_id=pair_id,
                pair_ref=by_id[pair_id].pair_ref,
                item_id=by_id[pair_id].item_id,
                question=by_id[pair_id].question,
                response_a_id=by_id[pair_id].response_a_id,
                response_b_id=by_id[pair_id].response_b_id,
                label=by_id[pair_id].label,
            )
            for pair_id in pair_ids
        ],
        batch_size=BATCH,
    )
    if any(row.pk is None for row in stored):
        # Backends that return no ids on bulk insert (none of ours today): read them back.
        ids = dict(
            ExplanationPair.objects.filter(explanation=explanation).values_list("pair_id", "id")
        )
        row_ids = [ids[pair_id] for pair_id in pair_ids]
    else:
        row_ids = [row.pk for row in stored]
    rows, columns = np.nonzero(activations)
    # In slices: bulk_create lists what it is given, and 100,000 pairs with K = 4 make
    # 400,000 model instances at once otherwise.
    for start in range(0, len(rows), BATCH):
        ExplanationActivation.objects.bulk_create(
            [
                ExplanationActivation(
                    explanation=explanation,
                    pair_id=row_ids[int(r)],
                    feature=int(c),
                    activation=float(activations[r, c]),
                    magnitude=abs(float(activations[r, c])),
                )
                for r, c in zip(
                    rows[start : start + BATCH], columns[start : start + BATCH], strict=True
                )
            ]
        )
    features = [json_safe(f) for f in report.get("features") or []]
    ExplanationFeature.objects.bulk_create(
        [
            ExplanationFeature(
                explanation=explanation,
                index=int(features[position].get("index", position)),
                rank=rank,
                name=str(features[position].get("name") or "")[:200],
                proposed_name=str(features[position].get("proposed_name") or "")[:200],
                coef=_finite(features[position].get("coef")),
                ci_low=_finite(features[position].get("ci_low")),
                ci_high=_finite(features[position].get("ci_high")),
                p_value=_finite(features[position].get("p_value")),
                p_bonferroni=_finite(features[position].get("p_bonferroni")),
                prevalence=_finite(features[position].get("prevalence")) or 0.0,
                fidelity_r=_finite(features[position].get("fidelity_r")),
                fidelity_p=_finite(features[position].get("fidelity_p")),
                ngrams_high=list(features[position].get("ngrams_high") or []),
                ngrams_low=list(features[position].get("ngrams_low") or []),
                stats=dict(features[position].get("stats") or {}),
                examples=list(features[position].get("examples") or []),
                group_effects=list(features[position].get("group_effects") or []),
            )
            for rank, position in enumerate(feature_rank_order(features), start=1)
        ]
    )
    return explanation


@transaction.atomic
def review_entries_from_feature(
    *,
    project: Project,
    job: Any,
    feature: Any,
    top: Any = None,
    threshold: Any = None,
    user: AbstractBaseUser | None = None,
) -> dict[str, int]:
    """Queue the items of the pairs where ``feature`` of explain job ``job`` is most active.

    ``top`` takes the N most active pairs, ``threshold`` every pair whose activation is
    at least that large (both: the first N of those). The entry's reason names the
    feature; its scores keep the feature, the job and the pairs with their activations.
    Gold and excluded items are left out. Returns the pairs and items selected and how
    many entries were new (an item already open for this source keeps its entry, so a
    second call adds nothing). Bad input is a 400 naming the field.
    """
    if isinstance(job, bool) or not isinstance(job, int):
        raise ValidationFailed("job must be an explain job's id.", field="job")
    explanation = explanation_job_check(project=project, job_id=job, field="job")
    if isinstance(feature, bool) or not isinstance(feature, int):
        raise ValidationFailed("feature must be a feature index.", field="feature")
    try:
        found = feature_get(explanation=explanation, index=feature)
    except BallotError:
        raise ValidationFailed(
            f"feature {feature} is not a feature of this explanation.", field="feature"
        ) from None
    top, threshold = feature_selection_check(top, threshold)
    pairs = feature_top_pairs(
        explanation=explanation, feature=feature, top=top, threshold=threshold
    )
    eligible = set(
        Item.objects.filter(
            id__in={p["item_id"] for p in pairs}, is_gold=False, excluded=False
        ).values_list("id", flat=True)
    )
    per_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pair in pairs:
        if pair["item_id"] in eligible:
            per_item[pair["item_id"]].append(
                {k: pair[k] for k in ("pair_ref", "question", "activation")}
            )
    label = f"feature {found.index}" + (f" ({found.name})" if found.name else "")
    coef = f", coefficient {found.coef:+.2f}" if found.coef is not None else ""
    rows = {
        item_id: (
            f"{label} of explanation job {explanation.job_id}{coef}: "
            f"activation {max(abs(p['activation']) for p in item_pairs):.3f}",
            {
                "explanation_job": explanation.job_id,
                "feature": found.index,
                "feature_name": found.name,
                "pairs": item_pairs[:PAIRS_KEPT],
            },
        )
        for item_id, item_pairs in per_item.items()
    }
    added = review_entries_add(
        source=ReviewSource.EXPLANATION, rows=rows, job=explanation.job, user=user
    )
    return {"pairs": len(pairs), "items": len(rows), "added": added}

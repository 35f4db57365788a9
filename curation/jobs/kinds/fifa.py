"""FiFA filtering: score every preference pair and keep an important, diverse subset.

Pairs → embeddings → out-of-fold reward margins (or a local Hugging Face reward
model's) → text quality → FiFA importance and selection → suspect labels.
Writes: one ``PairScore`` per non-tie pair and ``prompt_embeddings.npy`` as an
``Artifact``. The suspect-labels kind stores its rows through the same
:func:`score_and_store` (``kinds/suspects.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction

import models_gpu
from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import (
    artifact_store,
    embedding_cache,
    finite,
    job_folder,
    model_path,
    oof_cache,
)
from curation.jobs.kinds.reward import MIN_PAIRS, RewardParams
from curation.jobs.params import boolean, choice, default_of, integer, model, number
from curation.models import Job, JobKind, PairScore
from curation.pairs import iter_preference_pairs, pair_key
from curation.storage import save_array_atomic

FiFA = models_gpu.FiFAConfig


@dataclass(frozen=True)
class ScoringParams(RewardParams):
    """Parameters of a FiFA or suspect-labels job."""

    alpha: float = number(
        default_of(FiFA, "alpha"), low=-100, high=100, help="Weight of text quality."
    )
    gamma: float = number(
        default_of(FiFA, "gamma"),
        low=-100,
        high=100,
        help="Weight of prompt diversity (log distance to the k-th nearest prompt).",
    )
    k: int = integer(
        default_of(FiFA, "k"), low=1, high=100, help="Neighbour rank for the diversity term."
    )
    keep_fraction: float = number(
        default_of(FiFA, "keep_fraction"),
        low=0.0,
        high=1.0,
        help="Share of pairs to keep when keep_top is null.",
    )
    keep_top: int | None = integer(
        default_of(FiFA, "keep_top"),
        low=1,
        high=10_000_000,
        nullable=True,
        help="Exact number of pairs to keep; overrides keep_fraction.",
    )
    greedy: bool = boolean(
        default_of(FiFA, "greedy"),
        help="Re-score diversity against the prompts already kept (true) or take the "
        "static top-scoring pairs (false).",
    )
    when_short: str = choice(
        default_of(FiFA, "when_short"),
        models_gpu.WHEN_SHORT,
        help="When greedy selection runs out of distinct prompts: fill up by importance "
        "or stop short.",
    )
    suspect_threshold: float = number(
        default_of(models_gpu.SuspectConfig, "threshold"),
        low=0.0,
        high=1.0,
        help="Never flag a pair as suspect when its estimated probability of a wrong label "
        "is below this (the other suspect settings keep their defaults; the suspect-labels "
        "job has them all).",
    )
    reward_model_path: str | None = model(
        help="A local Hugging Face reward model (a folder under a configured model root) "
        "that supplies the margins instead of the Bradley–Terry head; null to train one.",
    )

    def pipeline_config(self) -> models_gpu.PipelineConfig:
        return models_gpu.PipelineConfig(
            embedding=self.embedding(),
            reward=self.reward_config(),
            fifa=models_gpu.FiFAConfig(
                alpha=self.alpha,
                gamma=self.gamma,
                k=self.k,
                keep_fraction=self.keep_fraction,
                keep_top=self.keep_top,
                greedy=self.greedy,
                seed=self.seed,
                when_short=self.when_short,
            ),
            suspects=models_gpu.SuspectConfig(threshold=self.suspect_threshold),
        )


def run(job: Job, report: Report) -> dict[str, Any]:
    """Score the selected pairs and store one ``PairScore`` each, replacing an earlier run's."""
    params = ScoringParams.from_job(job)
    scoring, stored = score_and_store(
        job,
        report,
        params=params,
        config=params.pipeline_config(),
        reward_model_path=params.reward_model_path,
    )
    summary = models_gpu.selection_summary(
        scoring.fifa, scoring.prompt_emb, k=params.k, seed=params.seed
    )
    return {
        **stored,
        "kept": summary.n_kept,
        "requested": scoring.fifa.requested,
        "kept_diverse": scoring.fifa.kept_diverse,
        "filled": scoring.fifa.filled,
        "when_short": params.when_short,
        # Why fewer diverse pairs than asked were found (null when the selection was not short).
        "short_reason": scoring.fifa.short_reason,
        "mean_margin": {
            "kept": finite(summary.mean_margin_kept),
            "full": finite(summary.mean_margin_full),
            "random": finite(summary.mean_margin_random),
        },
        "prompt_entropy": {
            "kept": finite(summary.entropy_kept),
            "full": finite(summary.entropy_full),
            "random": finite(summary.entropy_random),
        },
        "suspects": len(scoring.suspects.indices),
        "suspect_threshold": params.suspect_threshold,
    }


def score_and_store(
    job: Job,
    report: Report,
    *,
    params: RewardParams,
    config: models_gpu.PipelineConfig,
    reward_model_path: str | None,
) -> tuple[models_gpu.PairScoring, dict[str, Any]]:
    """Pairs → :func:`models_gpu.score_pairs` → one ``PairScore`` per non-tie pair.

    Shared by FiFA and suspect labels; returns the scoring and the result fields both
    report (pairs, held-out accuracy, timings, the selection).
    """
    selection = params.selection()
    report(0.0, "building pairs")
    pairs = list(iter_preference_pairs(project=job.project, selection=selection))
    ties = sum(1 for p in pairs if p.tie)
    pairs = [p for p in pairs if not p.tie]
    if len(pairs) < max(params.folds, config.fifa.k + 2, MIN_PAIRS):
        raise ValidationFailed(
            f"Only {len(pairs)} non-tie pairs: too few to score (need at least {MIN_PAIRS}).",
            field="params",
        )
    prompts = [p.prompt_text for p in pairs]
    chosen = [p.chosen_text for p in pairs]
    rejected = [p.rejected_text for p in pairs]
    external = None
    if reward_model_path:
        report(0.02, "scoring with the Hugging Face reward model")
        folder = model_path(reward_model_path, "reward_model_path")
        external = (
            models_gpu.HFRewardModel(folder).fit().decision_function(prompts, chosen, rejected)
        )
    scoring = models_gpu.score_pairs(
        prompts,
        chosen,
        rejected,
        groups=prompts,
        weights=np.array([p.weight for p in pairs], dtype=np.float64),
        config=config,
        embedding_cache=embedding_cache(),
        oof_cache=oof_cache(),
        progress=lambda fraction, message: report(0.05 + 0.85 * fraction, message),
        margins=external,
    )
    report(0.92, "storing scores")
    relative = f"{job_folder(job)}/prompt_embeddings.npy"
    save_array_atomic(relative, scoring.prompt_emb.astype(np.float32))
    rank_of = {int(index): rank for rank, index in enumerate(scoring.fifa.kept_order)}
    flagged = {int(i) for i in scoring.suspects.indices}
    rows = [
        PairScore(
            job=job,
            item_id=pair.item_id,
            pair_key=pair_key(pair),
            kind=pair.kind,
            question=pair.question,
            chosen_response_id=pair.chosen_response_id,
            rejected_response_id=pair.rejected_response_id,
            agreement=pair.agreement,
            margin=float(scoring.reward.margins[index]),
            prob_chosen=float(scoring.reward.prob_chosen[index]),
            quality=float(scoring.fifa.quality[index]),
            diversity=float(scoring.fifa.diversity[index]),
            importance=float(scoring.fifa.importance[index]),
            kept=bool(scoring.fifa.kept[index]),
            kept_rank=rank_of.get(index),
            suspect=index in flagged,
            suspect_confidence=float(scoring.suspects.confidence[index]),
            fold=int(scoring.reward.fold[index]),
        )
        for index, pair in enumerate(pairs)
    ]
    with transaction.atomic():
        PairScore.objects.filter(job=job).delete()
        PairScore.objects.bulk_create(rows, batch_size=2000)
        artifact_store(
            job, "prompt-embeddings", relative, {"shape": list(scoring.prompt_emb.shape)}
        )
    return scoring, {
        "pairs": len(pairs),
        "ties_excluded": ties,
        "heldout_accuracy": finite(scoring.reward.accuracy),
        "fold_accuracy": [finite(a) for a in scoring.reward.fold_accuracy],
        "timings": {k: round(v, 3) for k, v in scoring.timings.items()},
        "selection": selection.describe(),
    }


SPEC = JobKindSpec(
    kind=JobKind.FIFA.value,
    summary="Score every pair (reward margin, quality, prompt diversity) and keep an "
    "important, diverse subset; also labels suspects.",
    params=ScoringParams,
    queue="gpu",
    writes=("PairScore per non-tie pair", "Artifact: prompt_embeddings.npy"),
    run=run,
)

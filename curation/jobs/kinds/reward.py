"""Train a Bradley–Terry reward model on the project's preference pairs.

Writes: ``reward.safetensors`` as an ``Artifact`` (with its config); the result holds
the out-of-fold accuracy, measured on folds grouped by prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from django.db import transaction

import models_gpu
from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import (
    artifact_store,
    batch_size_param,
    embedding_cache,
    embedding_config,
    embedding_model_param,
    finite,
    job_folder,
)
from curation.jobs.params import default_of, integer, number
from curation.jobs.selection import SelectionParams
from curation.models import Job, JobKind
from curation.pairs import iter_preference_pairs
from curation.params import SEED_MAX
from curation.storage import absolute

MIN_PAIRS = 10


@dataclass(frozen=True)
class RewardParams(SelectionParams):
    """Parameters of a reward-model job."""

    folds: int = integer(
        default_of(models_gpu.RewardConfig, "folds"),
        low=2,
        high=20,
        help="Folds, grouped by prompt and near-duplicate prompt, for the out-of-fold accuracy.",
    )
    duplicate_cosine: float = number(
        default_of(models_gpu.RewardConfig, "duplicate_cosine"),
        low=0.5,
        high=1.0,
        help="Prompts at least this cosine-similar (near duplicates, joined transitively) "
        "share a fold, so none is scored by a model that saw its twin.",
    )
    epochs: int = integer(
        default_of(models_gpu.RewardConfig, "epochs"),
        low=1,
        high=500,
        help="Passes over the training pairs.",
    )
    hidden: int = integer(
        default_of(models_gpu.RewardConfig, "hidden"),
        low=4,
        high=4096,
        help="Width of the reward head's hidden layer.",
    )
    seed: int = integer(
        default_of(models_gpu.RewardConfig, "seed"),
        low=0,
        high=SEED_MAX,
        help="Seeds initialisation, shuffling and fold assignment.",
    )
    batch_size: int = batch_size_param()
    embedding_model: str | None = embedding_model_param()

    def reward_config(self) -> models_gpu.RewardConfig:
        return models_gpu.RewardConfig(
            folds=self.folds,
            epochs=self.epochs,
            hidden=self.hidden,
            seed=self.seed,
            duplicate_cosine=self.duplicate_cosine,
        )

    def embedding(self) -> models_gpu.EmbeddingConfig:
        return embedding_config(embedding_model=self.embedding_model, batch_size=self.batch_size)


def run(job: Job, report: Report) -> dict[str, Any]:
    """Pairs → embeddings → out-of-fold accuracy → a model trained on every pair, saved."""
    params = RewardParams.from_job(job)
    pairs = [
        p
        for p in iter_preference_pairs(project=job.project, selection=params.selection())
        if not p.tie
    ]
    if len(pairs) < max(params.folds, MIN_PAIRS):
        raise ValidationFailed(
            f"Only {len(pairs)} non-tie pairs: too few to train on (need at least {MIN_PAIRS}).",
            field="params",
        )
    n = len(pairs)
    prompts = [p.prompt_text for p in pairs]
    emb = models_gpu.embed_texts(
        [*prompts, *(p.chosen_text for p in pairs), *(p.rejected_text for p in pairs)],
        config=params.embedding(),
        cache=embedding_cache(),
        progress=lambda f, m: report(0.7 * f, f"embedding: {m}"),
    )
    config = params.reward_config()
    weights = np.array([p.weight for p in pairs])
    report(0.72, "out-of-fold training")
    oof = models_gpu.out_of_fold_margins(
        emb[:n], emb[n : 2 * n], emb[2 * n :], groups=prompts, weights=weights, config=config
    )
    report(0.9, "training on all pairs")
    reward_model = models_gpu.BradleyTerryReward(config).fit(
        emb[:n], emb[n : 2 * n], emb[2 * n :], weights=weights
    )
    relative = f"{job_folder(job)}/reward.safetensors"
    target = absolute(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    reward_model.save(target)
    with transaction.atomic():
        artifact_store(job, "reward-model", relative, {"config": asdict(config)})
    return {
        "pairs": n,
        "heldout_accuracy": finite(oof.accuracy),
        "fold_accuracy": [finite(a) for a in oof.fold_accuracy],
        "artifact": relative,
    }


SPEC = JobKindSpec(
    kind=JobKind.REWARD.value,
    summary="Train a Bradley–Terry reward model on embeddings of the selected pairs.",
    params=RewardParams,
    queue="gpu",
    writes=("Artifact: reward.safetensors",),
    run=run,
)

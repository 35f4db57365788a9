"""What each job kind does. Tasks stay thin: they claim the job and call ``run``.

Each handler loads rows, calls ``models_gpu`` (which never sees Django), stores
its results in one transaction that first removes the job's earlier results,
so running a job twice leaves the same rows, never duplicates.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.errors import ValidationFailed
from annotation.models import Item, Project
from curation import params as check
from curation.conversation import conversation_text
from curation.models import Artifact, Job, JobKind, JobShard, PairScore
from curation.pairs import SELECTION_FIELDS, iter_preference_pairs, pair_key, selection_from_params
from curation.storage import absolute, embedding_cache_dir, file_sha256, save_array_atomic

Report = Callable[[float, str], None]

FIFA_DEFAULTS = {
    "alpha": 1.0,
    "gamma": 1.0,
    "k": 5,
    "keep_fraction": 0.5,
    "keep_top": None,
    "greedy": True,
    "when_short": "fill",
}
REWARD_DEFAULTS = {"folds": 5, "epochs": 12, "hidden": 128, "seed": 0}
EMBED_DEFAULTS = {"batch_size": 64, "embedding_model": None}
SCORING_DEFAULTS = {
    **REWARD_DEFAULTS,
    **FIFA_DEFAULTS,
    **EMBED_DEFAULTS,
    "suspect_threshold": 0.7,
    "reward_model_path": None,
}
SELECTION_KEYS = set(SELECTION_FIELDS)
# models_gpu.fifa.WHEN_SHORT, repeated so that validating a request does not import torch.
WHEN_SHORT = ("fill", "stop")
# What each kind takes, with defaults; any other key is refused (a typo must not be ignored).
DEFAULTS: dict[str, dict[str, Any]] = {
    JobKind.EMBED: {**EMBED_DEFAULTS, "shards": 1},
    JobKind.REWARD: {**REWARD_DEFAULTS, **EMBED_DEFAULTS},
    JobKind.FIFA: SCORING_DEFAULTS,
    JobKind.SUSPECTS: SCORING_DEFAULTS,
}
TAKES_SELECTION = {JobKind.REWARD, JobKind.FIFA, JobKind.SUSPECTS}
# The bundled embedding model, usable without any configured model root.
EMBEDDING_IDS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
# key -> (low, high, integer); every number a job takes, with its range.
RANGES: dict[str, tuple[float, float, bool]] = {
    "alpha": (-100, 100, False),
    "gamma": (-100, 100, False),
    "k": (1, 100, True),
    "keep_fraction": (0.0, 1.0, False),
    "keep_top": (1, 10_000_000, True),
    "folds": (2, 20, True),
    "epochs": (1, 500, True),
    "hidden": (4, 4096, True),
    "seed": (0, check.SEED_MAX, True),
    "suspect_threshold": (0.5, 1.0, False),
    "shards": (1, 256, True),
    "batch_size": (1, 4096, True),
}


def validate_params(*, kind: str, project: Project, params: dict) -> dict:
    """Check a job's parameters strictly; return them with defaults filled in.

    Unknown keys, wrong types, out-of-range numbers and model names outside the
    configured model roots are refused with ``params.<key>`` and the reason.
    """
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object.", field="params")
    if kind == JobKind.EXPORT:
        from curation.services.datasets import validate_export_params

        return validate_export_params(project=project, params=params)
    defaults = DEFAULTS[kind]
    allowed = set(defaults) | (SELECTION_KEYS if kind in TAKES_SELECTION else set())
    check.reject_unknown(params, allowed, f"{kind} job")
    clean = {**defaults, **params}
    for key, (low, high, integer) in RANGES.items():
        if key in clean:
            clean[key] = check.number(
                clean, key, low=low, high=high, integer=integer, nullable=key == "keep_top"
            )
    if "greedy" in clean:
        check.boolean(clean, "greedy")
    if "when_short" in clean:
        check.choice(clean, "when_short", WHEN_SHORT)
    check.model_name(clean, "embedding_model", allowed_ids=EMBEDDING_IDS)
    if "reward_model_path" in clean:
        check.model_name(clean, "reward_model_path")
    if kind in TAKES_SELECTION:
        selection_from_params({k: v for k, v in clean.items() if k in SELECTION_KEYS})
    return clean


def _model_path(params: dict, key: str, allowed_ids: tuple[str, ...] = ()) -> str | None:
    """The folder a validated model name stands for, checked again where the job runs."""
    name = params.get(key)
    if not name:
        return None
    folder = check.model_folder(name, allowed_ids=allowed_ids)
    if folder is None:
        # Validated when the job was created; the roots or the folder changed since.
        raise ValidationFailed(
            f"{key} {name!r} is no longer under a configured model root (BALLOT_MODEL_ROOTS).",
            field=f"params.{key}",
        )
    return folder


def _embedding_config(params: dict):
    from models_gpu.embeddings import EmbeddingConfig

    model = (
        _model_path(params, "embedding_model", EMBEDDING_IDS)
        or settings.BALLOT_EMBEDDING_MODEL
        or None
    )
    return EmbeddingConfig(
        batch_size=int(params.get("batch_size", 64)), **({"model": model} if model else {})
    )


def _cache():
    from models_gpu.embeddings import EmbeddingCache

    return EmbeddingCache(embedding_cache_dir())


def _store_artifact(job: Job, kind: str, relative: str, metadata: dict | None = None) -> Artifact:
    path = absolute(relative)
    artifact, _ = Artifact.objects.update_or_create(
        job=job,
        kind=kind,
        path=relative,
        defaults={
            "project": job.project,
            "sha256": file_sha256(path),
            "size": path.stat().st_size,
            "metadata": metadata or {},
        },
    )
    return artifact


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


# --- FiFA filtering and suspect labels -------------------------------------------------


def run_scoring(job: Job, report: Report) -> dict:
    """Pairs → embeddings → out-of-fold reward margins → quality → FiFA → suspects; store per-pair rows."""
    from models_gpu.fifa import FiFAConfig, selection_summary
    from models_gpu.pipeline import PipelineConfig, score_pairs
    from models_gpu.reward import RewardConfig

    params = job.params
    selection = selection_from_params({k: v for k, v in params.items() if k in SELECTION_KEYS})
    report(0.0, "building pairs")
    pairs = list(iter_preference_pairs(project=job.project, selection=selection))
    ties = sum(1 for p in pairs if p.tie)
    pairs = [p for p in pairs if not p.tie]
    if len(pairs) < max(params["folds"], params["k"] + 2, 10):
        raise ValidationFailed(
            f"Only {len(pairs)} non-tie pairs: too few to score (need at least 10).", field="params"
        )
    keep_top = params.get("keep_top")
    config = PipelineConfig(
        embedding=_embedding_config(params),
        reward=RewardConfig(
            folds=params["folds"],
            epochs=params["epochs"],
            hidden=params["hidden"],
            seed=params["seed"],
        ),
        fifa=FiFAConfig(
            alpha=params["alpha"],
            gamma=params["gamma"],
            k=params["k"],
            keep_fraction=params["keep_fraction"],
            keep_top=keep_top,
            greedy=params["greedy"],
            seed=params["seed"],
            when_short=params.get("when_short", "fill"),
        ),
        suspect_threshold=params["suspect_threshold"],
    )
    prompts = [p.prompt_text for p in pairs]
    external = None
    if params.get("reward_model_path"):
        from models_gpu.reward import HFRewardModel

        report(0.02, "scoring with the Hugging Face reward model")
        external = HFRewardModel(_model_path(params, "reward_model_path")).margin(
            prompts, [p.chosen_text for p in pairs], [p.rejected_text for p in pairs]
        )
    scoring = score_pairs(
        prompts,
        [p.chosen_text for p in pairs],
        [p.rejected_text for p in pairs],
        groups=prompts,
        weights=np.array([p.weight for p in pairs], dtype=np.float64),
        config=config,
        cache=_cache(),
        progress=lambda fraction, message: report(0.05 + 0.85 * fraction, message),
        margins=external,
    )
    summary = selection_summary(
        scoring.fifa, scoring.prompt_emb, k=params["k"], seed=params["seed"]
    )
    report(0.92, "storing scores")
    relative = f"projects/{job.project_id}/jobs/{job.id}/prompt_embeddings.npy"
    save_array_atomic(relative, scoring.prompt_emb.astype(np.float32))
    rank_of = {int(index): rank for rank, index in enumerate(scoring.fifa.kept_order)}
    flagged = set(int(i) for i in scoring.suspects.indices)
    rows = []
    for index, pair in enumerate(pairs):
        rows.append(
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
        )
    with transaction.atomic():
        PairScore.objects.filter(job=job).delete()
        PairScore.objects.bulk_create(rows, batch_size=2000)
        _store_artifact(
            job, "prompt-embeddings", relative, {"shape": list(scoring.prompt_emb.shape)}
        )
    return {
        "pairs": len(pairs),
        "ties_excluded": ties,
        "heldout_accuracy": _finite(scoring.reward.accuracy),
        "fold_accuracy": [_finite(a) for a in scoring.reward.fold_accuracy],
        "kept": summary.n_kept,
        "requested": scoring.fifa.requested,
        "kept_diverse": scoring.fifa.kept_diverse,
        "filled": scoring.fifa.filled,
        "when_short": params.get("when_short", "fill"),
        # Why fewer diverse pairs than asked were found (null when the selection was not short).
        "short_reason": scoring.fifa.short_reason,
        "mean_margin": {
            "kept": _finite(summary.mean_margin_kept),
            "full": _finite(summary.mean_margin_full),
            "random": _finite(summary.mean_margin_random),
        },
        "prompt_entropy": {
            "kept": _finite(summary.entropy_kept),
            "full": _finite(summary.entropy_full),
            "random": _finite(summary.entropy_random),
        },
        "suspects": len(flagged),
        "suspect_threshold": params["suspect_threshold"],
        "timings": {k: round(v, 3) for k, v in scoring.timings.items()},
        "selection": selection.describe(),
    }


# --- embeddings, sharded ----------------------------------------------------------------


def project_texts(project: Project) -> list[str]:
    """Every distinct text of a project in a stable order: prompts then responses, by item id."""
    from annotation.models import Response

    seen: dict[str, None] = {}
    for conversation in (
        Item.objects.filter(project=project)
        .order_by("id")
        .values_list("conversation", flat=True)
        .iterator(2000)
    ):
        # The same text as PreferencePair.prompt_text, so scoring jobs hit this cache.
        seen.setdefault(conversation_text(conversation), None)
    for text in (
        Response.objects.filter(item__project=project)
        .order_by("item_id", "position")
        .values_list("text", flat=True)
        .iterator(2000)
    ):
        seen.setdefault(text, None)
    return list(seen)


def shard_bounds(total: int, shards: int, index: int) -> tuple[int, int]:
    size = math.ceil(total / shards) if shards else total
    return min(index * size, total), min((index + 1) * size, total)


def run_embed_shard(job: Job, index: int, worker: str = "") -> str:
    """Embed one slice of the project's texts into a shard artifact. A finished shard is skipped."""
    from models_gpu.embeddings import embed_texts

    shard, _ = JobShard.objects.get_or_create(job=job, index=index)
    if shard.done:
        return shard.artifact_path
    texts = project_texts(job.project)
    start, end = shard_bounds(len(texts), job.params["shards"], index)
    vectors = embed_texts(texts[start:end], config=_embedding_config(job.params), cache=_cache())
    relative = f"projects/{job.project_id}/jobs/{job.id}/shard-{index:04d}.npy"
    save_array_atomic(relative, vectors.astype(np.float32))
    JobShard.objects.filter(pk=shard.pk).update(
        done=True, worker=worker[:200], artifact_path=relative, finished_at=timezone.now()
    )
    return relative


def run_embed_merge(job: Job, report: Report) -> dict:
    shards = list(JobShard.objects.filter(job=job).order_by("index"))
    if len(shards) != job.params["shards"] or not all(s.done for s in shards):
        raise RuntimeError("embedding shards are missing; the job will be retried")
    arrays = [np.load(absolute(s.artifact_path)) for s in shards]
    merged = (
        np.concatenate([a for a in arrays if a.size], axis=0)
        if any(a.size for a in arrays)
        else np.zeros((0, 0), np.float32)
    )
    relative = f"projects/{job.project_id}/jobs/{job.id}/embeddings.npy"
    save_array_atomic(relative, merged)
    with transaction.atomic():
        _store_artifact(job, "embeddings", relative, {"shape": list(merged.shape)})
    return {
        "texts": int(merged.shape[0]),
        "dim": int(merged.shape[1]) if merged.ndim == 2 else 0,
        "shards": len(shards),
        "workers": sorted({s.worker for s in shards if s.worker}),
        "artifact": relative,
    }


# --- reward model -----------------------------------------------------------------------


def run_reward(job: Job, report: Report) -> dict:
    from models_gpu.embeddings import embed_texts
    from models_gpu.reward import BradleyTerryReward, RewardConfig, out_of_fold_margins

    params = job.params
    selection = selection_from_params({k: v for k, v in params.items() if k in SELECTION_KEYS})
    pairs = [
        p for p in iter_preference_pairs(project=job.project, selection=selection) if not p.tie
    ]
    if len(pairs) < max(params["folds"], 10):
        raise ValidationFailed(
            f"Only {len(pairs)} non-tie pairs: too few to train on (need at least 10).",
            field="params",
        )
    n = len(pairs)
    prompts = [p.prompt_text for p in pairs]
    emb = embed_texts(
        [*prompts, *(p.chosen_text for p in pairs), *(p.rejected_text for p in pairs)],
        config=_embedding_config(params),
        cache=_cache(),
        progress=lambda f, m: report(0.7 * f, f"embedding: {m}"),
    )
    config = RewardConfig(
        folds=params["folds"], epochs=params["epochs"], hidden=params["hidden"], seed=params["seed"]
    )
    weights = np.array([p.weight for p in pairs])
    report(0.72, "out-of-fold training")
    oof = out_of_fold_margins(
        emb[:n], emb[n : 2 * n], emb[2 * n :], groups=prompts, weights=weights, config=config
    )
    report(0.9, "training on all pairs")
    model = BradleyTerryReward(config).fit(emb[:n], emb[n : 2 * n], emb[2 * n :], weights=weights)
    relative = f"projects/{job.project_id}/jobs/{job.id}/reward.safetensors"
    target = absolute(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    with transaction.atomic():
        _store_artifact(job, "reward-model", relative, {"config": asdict(config)})
    return {
        "pairs": n,
        "heldout_accuracy": _finite(oof.accuracy),
        "fold_accuracy": [_finite(a) for a in oof.fold_accuracy],
        "artifact": relative,
    }


def code_version() -> str:
    """The code that produced a result: package version plus a hash of the curation and core sources."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("ballot")
    except PackageNotFoundError:
        package = "0"
    digest = hashlib.sha256()
    root = settings.BASE_DIR
    for folder in ("curation", "models_gpu", "annotation"):
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                digest.update(path.read_bytes())
    return f"ballot {package}+{digest.hexdigest()[:12]} (python {platform.python_version()})"


HANDLERS: dict[str, Callable[[Job, Report], dict]] = {
    JobKind.FIFA: run_scoring,
    JobKind.SUSPECTS: run_scoring,
    JobKind.REWARD: run_reward,
}


def result_json(result: dict) -> dict:
    """Make a result JSON-safe (no NaN)."""
    return json.loads(json.dumps(result, default=str).replace("NaN", "null"))

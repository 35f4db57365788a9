"""One call from raw pair texts to curation scores; the Celery task only wraps this."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models_gpu.embeddings import (
    EmbeddingCache,
    EmbeddingConfig,
    Progress,
    embed_texts,
    model_fingerprint,
    text_digests,
)
from models_gpu.fifa import FiFAConfig, FiFAResult, fifa_select, text_quality
from models_gpu.reward import OutOfFoldResult, RewardConfig, out_of_fold_margins
from models_gpu.suspects import SuspectResult, flag_suspects

# Share of the progress bar each stage gets; embedding dominates the wall time.
_STAGES = {"embed": 0.80, "reward": 0.12, "quality": 0.02, "fifa": 0.05, "suspects": 0.01}


@dataclass(frozen=True)
class PipelineConfig:
    """Settings for :func:`score_pairs`; each part has its own documented defaults."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    fifa: FiFAConfig = field(default_factory=FiFAConfig)
    suspect_threshold: float = 0.7
    calibrate_suspects: bool = True


@dataclass
class PairScoring:
    """Everything :func:`score_pairs` computed, aligned with the input pairs.

    ``quality`` is the mean of the prompt's and the chosen response's text quality.
    ``timings`` holds seconds per stage.
    """

    reward: OutOfFoldResult
    fifa: FiFAResult
    suspects: SuspectResult
    prompt_emb: np.ndarray
    timings: dict[str, float]

    @property
    def margins(self) -> np.ndarray:
        return self.reward.margins

    @property
    def quality(self) -> np.ndarray:
        return self.fifa.quality


def _stage_progress(progress: Progress | None, stage: str) -> Progress | None:
    if progress is None:
        return None
    names = list(_STAGES)
    start = sum(_STAGES[name] for name in names[: names.index(stage)])
    width = _STAGES[stage]
    return lambda fraction, message: progress(start + width * fraction, f"{stage}: {message}")


def score_pairs(
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    groups: Sequence[object] | None = None,
    weights: np.ndarray | None = None,
    config: PipelineConfig,
    cache: EmbeddingCache | None = None,
    progress: Callable[[float, str], None] | None = None,
    margins: np.ndarray | None = None,
) -> PairScoring:
    """Embed → out-of-fold reward margins → text quality → FiFA selection → suspects.

    ``groups`` default to the prompt text, so pairs on the same prompt share a fold.
    ``weights`` (0 for ties) weight the reward loss and exclude ties from suspects.
    ``progress(fraction, message)`` is called with fractions rising from 0 to 1.
    ``margins``, when given, come from an external reward model that never saw these
    pairs (e.g. a local Hugging Face classifier); the Bradley–Terry head is then skipped.
    """
    n = len(prompts)
    if not n == len(chosen) == len(rejected):
        raise ValueError("prompts, chosen and rejected must have the same length")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now
        if progress is not None:
            report = _stage_progress(progress, stage)
            assert report is not None
            report(1.0, "done")

    # One call for all three columns: a text used as prompt and response is embedded once.
    emb = embed_texts(
        [*prompts, *chosen, *rejected],
        config=config.embedding,
        cache=cache,
        progress=_stage_progress(progress, "embed"),
    )
    prompt_emb, chosen_emb, rejected_emb = emb[:n], emb[n : 2 * n], emb[2 * n :]
    lap("embed")
    group_list = list(prompts) if groups is None else list(groups)
    reward_key = (
        _reward_key(prompts, chosen, rejected, group_list, weights, config)
        if cache is not None
        else None
    )
    reward = (
        _external_reward(margins, weights)
        if margins is not None
        else _load_reward(cache, reward_key)
    )
    if reward is None:
        reward = out_of_fold_margins(
            prompt_emb,
            chosen_emb,
            rejected_emb,
            groups=group_list,
            weights=weights,
            config=config.reward,
        )
        _save_reward(cache, reward_key, reward)
    lap("reward")
    distinct = list(dict.fromkeys([*prompts, *chosen]))
    quality_of = dict(zip(distinct, text_quality(distinct), strict=True))
    quality = np.array(
        [(quality_of[p] + quality_of[c]) / 2 for p, c in zip(prompts, chosen, strict=True)]
    )
    lap("quality")
    fifa = fifa_select(reward.margins, quality, prompt_emb, config=config.fifa)
    lap("fifa")
    suspects = flag_suspects(
        reward.margins,
        threshold=config.suspect_threshold,
        weights=weights,
        calibrate=config.calibrate_suspects,
    )
    lap("suspects")
    return PairScoring(
        reward=reward, fifa=fifa, suspects=suspects, prompt_emb=prompt_emb, timings=timings
    )


# --- out-of-fold results, cached beside the embeddings -------------------------------
# Re-running a curation job with other selection settings (keep fraction, α, γ) on the
# same pairs should not retrain the reward model: the out-of-fold margins depend only
# on the texts, their grouping and weights, the embedding model and the reward config.


def _external_reward(margins: np.ndarray, weights: np.ndarray | None) -> OutOfFoldResult:
    margins = np.asarray(margins, dtype=np.float32)
    w = np.ones(len(margins)) if weights is None else np.asarray(weights, dtype=np.float64)
    counted = w > 0
    accuracy = (
        float(np.average(margins[counted] > 0, weights=w[counted]))
        if counted.any()
        else float("nan")
    )
    return OutOfFoldResult(
        margins=margins,
        prob_chosen=1.0 / (1.0 + np.exp(-margins.astype(np.float64))),
        fold=np.full(len(margins), -1),
        accuracy=accuracy,
        fold_accuracy=[],
    )


def _reward_key(prompts, chosen, rejected, groups, weights, config: PipelineConfig) -> str:
    digest = hashlib.sha256()
    digest.update(model_fingerprint(config.embedding).encode())
    digest.update(repr(config.reward).encode())
    for column in (prompts, chosen, rejected):
        digest.update(text_digests(list(column)).tobytes())
    digest.update(text_digests([str(g) for g in groups]).tobytes())
    if weights is not None:
        digest.update(np.ascontiguousarray(weights, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _reward_path(cache: EmbeddingCache, key: str) -> Path:
    return Path(cache.root) / "reward-oof" / f"{key}.npz"


def _load_reward(cache: EmbeddingCache | None, key: str | None) -> OutOfFoldResult | None:
    if cache is None or key is None:
        return None
    path = _reward_path(cache, key)
    if not path.exists():
        return None
    with np.load(path) as data:
        return OutOfFoldResult(
            margins=data["margins"],
            prob_chosen=data["prob_chosen"],
            fold=data["fold"],
            accuracy=float(data["accuracy"]),
            fold_accuracy=[float(a) for a in data["fold_accuracy"]],
        )


def _save_reward(cache: EmbeddingCache | None, key: str | None, result: OutOfFoldResult) -> None:
    if cache is None or key is None:
        return
    path = _reward_path(cache, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(handle)
    np.savez(
        tmp,
        margins=result.margins,
        prob_chosen=result.prob_chosen,
        fold=result.fold,
        accuracy=np.float64(result.accuracy),
        fold_accuracy=np.asarray(result.fold_accuracy, dtype=np.float64),
    )
    os.replace(tmp, path)  # atomic: a reader sees a whole file or none

"""One call from raw pair texts to curation scores; the Celery task only wraps this."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models_gpu.config import PipelineConfig, Progress
from models_gpu.embeddings import EmbeddingCache, embed_texts
from models_gpu.fifa import FiFAResult, fifa_select, text_quality
from models_gpu.reward import OutOfFoldCache, OutOfFoldResult, out_of_fold_margins
from models_gpu.suspects import SuspectResult, find_suspects, flag_suspects

# Share of the progress bar each stage gets; embedding dominates the wall time (the
# suspects stage may train a second round of out-of-fold models).
_STAGES = {"embed": 0.76, "reward": 0.12, "quality": 0.02, "fifa": 0.05, "suspects": 0.05}


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
    embedding_cache: EmbeddingCache | None = None,
    oof_cache: OutOfFoldCache | None = None,
    progress: Progress | None = None,
    margins: np.ndarray | None = None,
) -> PairScoring:
    """Embed → out-of-fold reward margins → text quality → FiFA selection → suspects.

    ``groups`` default to the prompt text, so pairs on the same prompt share a fold.
    ``weights`` (0 for ties) weight the reward loss and exclude ties from suspects.
    Suspects follow ``config.suspects`` (:func:`models_gpu.find_suspects`); their refit
    pass needs the Bradley–Terry head, so with external ``margins`` it is skipped.
    ``embedding_cache`` keeps each text from being embedded twice; ``oof_cache`` keeps a
    re-run on the same pairs with other FiFA settings from retraining the reward model.
    ``progress(fraction, message)`` is called with fractions rising from 0 to 1.
    ``margins``, when given, come from an external reward model that never saw these
    pairs (e.g. :class:`models_gpu.HFRewardModel`); the Bradley–Terry head is then skipped.
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
        cache=embedding_cache,
        progress=_stage_progress(progress, "embed"),
    )
    prompt_emb, chosen_emb, rejected_emb = emb[:n], emb[n : 2 * n], emb[2 * n :]
    lap("embed")
    if margins is not None:
        reward = OutOfFoldResult.from_margins(margins, weights)
    else:
        reward = out_of_fold_margins(
            prompt_emb,
            chosen_emb,
            rejected_emb,
            groups=list(prompts) if groups is None else list(groups),
            weights=weights,
            config=config.reward,
            cache=oof_cache,
        )
    lap("reward")
    distinct = list(dict.fromkeys([*prompts, *chosen]))
    quality_of = dict(zip(distinct, text_quality(distinct), strict=True))
    quality = np.array(
        [(quality_of[p] + quality_of[c]) / 2 for p, c in zip(prompts, chosen, strict=True)]
    )
    lap("quality")
    fifa = fifa_select(reward.margins, quality, prompt_emb, config=config.fifa)
    lap("fifa")
    if margins is not None:
        suspects = flag_suspects(reward.margins, weights=weights, config=config.suspects)
    else:
        suspects = find_suspects(
            prompt_emb,
            chosen_emb,
            rejected_emb,
            groups=list(prompts) if groups is None else list(groups),
            weights=weights,
            reward=config.reward,
            config=config.suspects,
            first_pass=reward,
            cache=oof_cache,
        )
    lap("suspects")
    return PairScoring(
        reward=reward, fifa=fifa, suspects=suspects, prompt_emb=prompt_emb, timings=timings
    )

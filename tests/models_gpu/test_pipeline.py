from __future__ import annotations

import numpy as np

from models_gpu.embeddings import EmbeddingCache
from models_gpu.fifa import FiFAConfig
from models_gpu.pipeline import PipelineConfig, score_pairs
from models_gpu.reward import RewardConfig
from tests.models_gpu.conftest import TEST_EMBEDDING, load_hh


def test_score_pairs_runs_every_stage_and_reports_rising_progress(
    embedding_cache: EmbeddingCache,
) -> None:
    # The session fixture already cached these texts, so this run embeds nothing new.
    prompts, chosen, rejected = load_hh(200)
    weights = np.ones(200)
    weights[:10] = 0.0  # ties
    progress: list[float] = []
    config = PipelineConfig(
        embedding=TEST_EMBEDDING,
        reward=RewardConfig(epochs=4, folds=3),
        fifa=FiFAConfig(keep_top=50),
        suspect_threshold=0.6,
    )
    scoring = score_pairs(
        prompts,
        chosen,
        rejected,
        weights=weights,
        config=config,
        cache=embedding_cache,
        progress=lambda fraction, _message: progress.append(fraction),
    )
    assert scoring.margins.shape == (200,)
    assert scoring.fifa.kept.sum() == 50
    assert np.all((scoring.quality >= 0) & (scoring.quality <= 1))
    assert not set(scoring.suspects.indices.tolist()) & set(range(10))
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert set(scoring.timings) == {"embed", "reward", "quality", "fifa", "suspects"}

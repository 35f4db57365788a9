from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import models_gpu.reward
from models_gpu import (
    BradleyTerryReward,
    EmbeddingCache,
    EmbeddingConfig,
    FiFAConfig,
    OutOfFoldCache,
    PipelineConfig,
    RewardConfig,
    SuspectConfig,
    get_embedder,
    score_pairs,
)
from tests.tiny_models import build_tiny_encoder


def letter_pairs(n: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` pairs over ``n // 2`` prompts, written in the tiny encoder's alphabet."""
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxy")

    def words(count: int) -> str:
        return " ".join("".join(rng.choice(letters, 4)) for _ in range(count))

    prompts = [words(3) for _ in range(n // 2)]
    return (
        [prompts[i // 2] for i in range(n)],
        [words(8) for _ in range(n)],
        [words(2) for _ in range(n)],
    )


@pytest.fixture
def tiny_config(tmp_path: Path) -> PipelineConfig:
    return PipelineConfig(
        embedding=EmbeddingConfig(model=str(build_tiny_encoder(tmp_path / "encoder"))),
        reward=RewardConfig(hidden=16, epochs=3, folds=3),
        fifa=FiFAConfig(keep_top=20),
        suspects=SuspectConfig(threshold=0.6),
    )


def test_score_pairs_runs_every_stage_and_reports_rising_progress(
    tiny_config: PipelineConfig,
) -> None:
    prompts, chosen, rejected = letter_pairs(80)
    weights = np.ones(80)
    weights[:10] = 0.0  # ties
    progress: list[float] = []
    scoring = score_pairs(
        prompts,
        chosen,
        rejected,
        weights=weights,
        config=tiny_config,
        progress=lambda fraction, _message: progress.append(fraction),
    )
    assert scoring.margins.shape == (80,)
    assert scoring.fifa.kept.sum() == 20
    assert np.all((scoring.quality >= 0) & (scoring.quality <= 1))
    assert not set(scoring.suspects.indices.tolist()) & set(range(10))
    assert len(set(scoring.reward.fold.tolist())) == 3
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert set(scoring.timings) == {"embed", "reward", "quality", "fifa", "suspects"}


def test_a_rerun_with_other_selection_settings_embeds_and_trains_nothing(
    tiny_config: PipelineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts, chosen, rejected = letter_pairs(60)
    embedding_cache = EmbeddingCache(tmp_path / "embeddings")
    oof_cache = OutOfFoldCache(tmp_path / "oof")
    first = score_pairs(
        prompts,
        chosen,
        rejected,
        config=tiny_config,
        embedding_cache=embedding_cache,
        oof_cache=oof_cache,
    )
    # Each cache keeps to its own folder: out-of-fold results are not in the embedding cache.
    assert list((tmp_path / "oof").glob("*.npz"))
    assert not list((tmp_path / "embeddings").rglob("*.npz"))
    encoded = get_embedder(tiny_config.embedding).texts_encoded_

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    # Out-of-fold margins train their fold heads with fit_stacked_heads; a model of its own
    # would be a BradleyTerryReward.
    monkeypatch.setattr(BradleyTerryReward, "fit", no_training)
    monkeypatch.setattr(models_gpu.reward, "fit_stacked_heads", no_training)
    again = score_pairs(
        prompts,
        chosen,
        rejected,
        config=PipelineConfig(
            embedding=tiny_config.embedding,
            reward=tiny_config.reward,
            fifa=FiFAConfig(keep_top=10, alpha=0.0),
        ),
        embedding_cache=EmbeddingCache(tmp_path / "embeddings"),
        oof_cache=OutOfFoldCache(tmp_path / "oof"),
    )
    assert get_embedder(tiny_config.embedding).texts_encoded_ == encoded
    np.testing.assert_array_equal(again.margins, first.margins)
    assert again.fifa.kept.sum() == 10


def test_margins_from_an_outside_model_skip_the_reward_head(
    tiny_config: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts, chosen, rejected = letter_pairs(40)
    margins = np.linspace(-2, 2, 40)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained")

    # Out-of-fold margins train their fold heads with fit_stacked_heads; a model of its own
    # would be a BradleyTerryReward.
    monkeypatch.setattr(BradleyTerryReward, "fit", no_training)
    monkeypatch.setattr(models_gpu.reward, "fit_stacked_heads", no_training)
    scoring = score_pairs(prompts, chosen, rejected, config=tiny_config, margins=margins)
    np.testing.assert_allclose(scoring.margins, margins, rtol=1e-6)
    assert (scoring.reward.fold == -1).all()
    assert scoring.reward.accuracy == pytest.approx(0.5)

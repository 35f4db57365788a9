from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models_gpu.reward import (
    BradleyTerryReward,
    HFRewardModel,
    RewardConfig,
    group_folds,
    out_of_fold_margins,
)
from tests.models_gpu.conftest import HHPairs
from tests.tiny_models import build_tiny_sequence_classifier


def synthetic_pairs(n: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Pairs whose chosen response has the larger projection on a hidden direction."""
    rng = np.random.default_rng(seed)
    prompts, a, b = (rng.standard_normal((n, dim)).astype(np.float32) for _ in range(3))
    direction = rng.standard_normal(dim)
    a_wins = (a @ direction) > (b @ direction)
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    return prompts, chosen, rejected


def test_a_tiny_reward_model_lowers_its_loss_and_changes_its_parameters() -> None:
    prompts, chosen, rejected = synthetic_pairs(256)
    config = RewardConfig(hidden=16, epochs=5, lr=1e-2, batch_size=32, seed=0)
    initial = BradleyTerryReward(replace(config, epochs=0)).fit(prompts, chosen, rejected)
    model = BradleyTerryReward(config).fit(prompts, chosen, rejected)
    assert model.loss_history_[-1] < model.loss_history_[0]
    # Same seed, same initialisation. The output bias cancels in r_c − r_r and gets no
    # gradient, so only weight decay moves it; every other tensor must have learned.
    for name, trained in model.head_.named_parameters():
        start = dict(initial.head_.named_parameters())[name]
        assert not torch.allclose(start, trained, atol=1e-3) or name == "out.bias", name
    assert (model.margin(prompts, chosen, rejected) > 0).mean() > 0.8


def test_zero_weight_pairs_do_not_train_the_model() -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    config = RewardConfig(hidden=8, epochs=2, weight_decay=0.0, seed=3)
    untrained = BradleyTerryReward(config).fit(prompts, chosen, rejected, np.zeros(64))
    initial = BradleyTerryReward(replace(config, epochs=0)).fit(prompts, chosen, rejected)
    for a, b in zip(untrained.head_.parameters(), initial.head_.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_saved_model_loads_with_identical_scores(tmp_path: Path) -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    model = BradleyTerryReward(RewardConfig(hidden=8, epochs=2)).fit(prompts, chosen, rejected)
    model.save(tmp_path / "reward.safetensors")
    loaded = BradleyTerryReward.load(tmp_path / "reward.safetensors")
    np.testing.assert_allclose(
        loaded.score(prompts, chosen), model.score(prompts, chosen), rtol=1e-5, atol=1e-6
    )
    assert loaded.config.hidden == 8


def test_folds_never_split_a_prompt_group() -> None:
    groups = np.repeat(np.arange(40), 3)
    fold = group_folds(groups, n_folds=5, seed=0)
    for group in range(40):
        assert len(set(fold[groups == group])) == 1
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]


def test_the_reward_model_beats_chance_on_held_out_hh_pairs(hh_pairs: HHPairs) -> None:
    result = out_of_fold_margins(
        hh_pairs.prompt_emb,
        hh_pairs.chosen_emb,
        hh_pairs.rejected_emb,
        groups=hh_pairs.prompts,
        config=RewardConfig(seed=0),
    )
    assert result.accuracy > 0.55
    assert len(result.fold_accuracy) == 5
    np.testing.assert_allclose(result.prob_chosen, 1 / (1 + np.exp(-result.margins)), rtol=1e-5)


def test_a_local_sequence_classifier_scores_pairs(tmp_path: Path) -> None:
    build_tiny_sequence_classifier(tmp_path, ["good", "bad", "answer", "question"])
    model = HFRewardModel(tmp_path, batch_size=2)
    margins = model.margin(["question"] * 3, ["good answer"] * 3, ["bad answer"] * 3)
    assert margins.shape == (3,)
    assert np.isfinite(margins).all()

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

import models_gpu.reward
from models_gpu import (
    BradleyTerryReward,
    HFRewardModel,
    OutOfFoldCache,
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
    assert model.score(prompts, chosen, rejected) > 0.8


def test_the_reward_model_follows_the_estimator_contract() -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    config = RewardConfig(hidden=8, epochs=2)
    model = BradleyTerryReward(config)
    assert vars(model) == {"config": config}  # __init__ only stores its settings
    with pytest.raises(NotFittedError):
        model.predict(prompts, chosen)
    assert model.fit(prompts, chosen, rejected) is model
    assert model.dim_ == 8 and len(model.loss_history_) == 2
    margins = model.decision_function(prompts, chosen, rejected)
    np.testing.assert_allclose(
        margins, model.predict(prompts, chosen) - model.predict(prompts, rejected), atol=1e-5
    )
    # score is a metric (the share of pairs ranked the right way), as in scikit-learn.
    assert model.score(prompts, chosen, rejected) == pytest.approx(np.mean(margins > 0))
    weights = (margins > 0).astype(float)
    assert model.score(prompts, chosen, rejected, weights) == 1.0


def test_training_is_seeded_by_the_config_and_leaves_the_global_rng_alone() -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    config = RewardConfig(hidden=8, epochs=2, seed=7)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = BradleyTerryReward(config).fit(prompts, chosen, rejected)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(5)  # whatever the caller's stream did meanwhile does not matter
    again = BradleyTerryReward(config).fit(prompts, chosen, rejected)
    other = BradleyTerryReward(replace(config, seed=8)).fit(prompts, chosen, rejected)
    for a, b in zip(first.head_.parameters(), again.head_.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.equal(first.head_.out.weight, other.head_.out.weight)


def test_zero_weight_pairs_do_not_train_the_model() -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    config = RewardConfig(hidden=8, epochs=2, weight_decay=0.0, seed=3)
    untrained = BradleyTerryReward(config).fit(prompts, chosen, rejected, np.zeros(64))
    initial = BradleyTerryReward(replace(config, epochs=0)).fit(prompts, chosen, rejected)
    for a, b in zip(untrained.head_.parameters(), initial.head_.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_saved_model_loads_from_safetensors_with_identical_rewards(tmp_path: Path) -> None:
    prompts, chosen, rejected = synthetic_pairs(64)
    model = BradleyTerryReward(RewardConfig(hidden=8, epochs=2)).fit(prompts, chosen, rejected)
    model.save(tmp_path / "reward.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "reward.safetensors"), framework="pt") as handle:
        assert set(handle.keys()) == set(model.head_.state_dict())
    loaded = BradleyTerryReward.load(tmp_path / "reward.safetensors")
    np.testing.assert_allclose(
        loaded.predict(prompts, chosen), model.predict(prompts, chosen), rtol=1e-5, atol=1e-6
    )
    assert loaded.config.hidden == 8


def test_folds_never_split_a_prompt_group() -> None:
    groups = np.repeat(np.arange(40), 3)
    fold = group_folds(groups, n_folds=5, seed=0)
    for group in range(40):
        assert len(set(fold[groups == group])) == 1
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]


def test_the_out_of_fold_cache_returns_a_result_without_training_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts, chosen, rejected = synthetic_pairs(60)
    groups = np.arange(60) // 3
    config = RewardConfig(hidden=8, epochs=2, folds=3)
    cache = OutOfFoldCache(tmp_path / "oof")
    first = out_of_fold_margins(
        prompts, chosen, rejected, groups=groups, config=config, cache=cache
    )
    assert len(list((tmp_path / "oof").glob("*.npz"))) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    # Out-of-fold margins train their fold heads with fit_stacked_heads; a model of its own
    # would be a BradleyTerryReward.
    monkeypatch.setattr(BradleyTerryReward, "fit", no_training)
    monkeypatch.setattr(models_gpu.reward, "fit_stacked_heads", no_training)
    again = out_of_fold_margins(
        prompts,
        chosen,
        rejected,
        groups=groups,
        config=config,
        cache=OutOfFoldCache(tmp_path / "oof"),
    )
    np.testing.assert_array_equal(again.margins, first.margins)
    np.testing.assert_array_equal(again.fold, first.fold)
    assert again.fold_accuracy == first.fold_accuracy
    # Anything the margins depend on changes the key: other weights train again.
    with pytest.raises(AssertionError, match="trained again"):
        out_of_fold_margins(
            prompts,
            chosen,
            rejected,
            groups=groups,
            weights=np.full(60, 0.5),
            config=config,
            cache=cache,
        )
    with pytest.raises(AssertionError, match="trained again"):
        out_of_fold_margins(
            prompts, chosen, rejected, groups=groups, config=replace(config, seed=1), cache=cache
        )


@pytest.mark.slow
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
    with pytest.raises(NotFittedError):
        model.predict(["question"], ["good answer"])
    margins = model.fit().decision_function(
        ["question"] * 3, ["good answer"] * 3, ["bad answer"] * 3
    )
    assert margins.shape == (3,)
    assert np.isfinite(margins).all()
    # The same pair three times, in a batch of two and a batch of one: the kernels differ
    # by batch shape, so the last float32 bits may too.
    np.testing.assert_allclose(margins, margins[0], rtol=1e-3)
    assert model.score(["question"], ["good answer"], ["bad answer"]) == float(margins[0] > 0)


def test_no_fold_head_learns_from_the_pairs_it_scores() -> None:
    # Random labels on random pairs: a head that saw a pair memorises it (in-sample accuracy
    # near 1), a head that did not is at chance. The stacked fold heads must be at chance.
    rng = np.random.default_rng(3)
    n, dim = 200, 32
    prompts, a, b = (rng.normal(size=(n, dim)).astype(np.float32) for _ in range(3))
    config = RewardConfig(hidden=64, epochs=60, dropout=0.0, weight_decay=0.0, lr=3e-3)
    result = out_of_fold_margins(prompts, a, b, groups=np.arange(n), config=config)
    assert abs(result.accuracy - 0.5) < 0.12, result.accuracy
    heads = models_gpu.reward.fit_stacked_heads(
        prompts, a, b, sign=np.ones((1, n)), weight=np.ones((1, n)), config=config
    )
    assert (heads.margins(prompts, a, b) > 0).mean() > 0.95  # what seeing them does

"""Suspect labels by confident learning: the rule on synthetic margins, then planted flips on HH-RLHF."""

from __future__ import annotations

import numpy as np
import pytest

from models_gpu import (
    RewardConfig,
    SuspectConfig,
    calibrate_temperature,
    estimate_noise,
    find_suspects,
    flag_suspects,
)
from tests.models_gpu.conftest import HHPairs
from tests.threads import one_thread


def planted(n: int, noise: float, seed: int, *, strength: float = 2.0) -> tuple:
    """Margins of a decent held-out model on ``n`` pairs, ``noise`` of whose labels are flipped.

    The model sees the true preference with logit ~ N(strength, 1.5) (about 85% right);
    a flipped label turns the margin around.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(strength, 1.5, size=n)
    flipped = rng.random(n) < noise
    return np.where(flipped, -truth, truth), flipped


def test_the_rule_flags_more_on_noisier_data_and_the_flags_are_mostly_flips() -> None:
    counts = []
    for noise, seed in ((0.1, 1), (0.25, 2), (0.4, 3)):
        margins, flipped = planted(4000, noise, seed)
        result = flag_suspects(margins, config=SuspectConfig())
        counts.append(len(result.indices))
        assert flipped[result.indices].mean() >= 2 * noise or noise == 0.4
        assert flipped[result.indices].mean() >= 1.3 * noise
        # The estimate follows the planted rate (it also counts the model's own mistakes).
        assert noise <= result.noise_rate <= noise + 0.2
        # Expected precision is a probability and the flagged are ranked by confidence.
        assert 0.5 <= result.expected_precision <= 1.0
        assert np.all(np.diff(result.confidence[result.indices]) <= 0)
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_calibration_on_noisy_labels_no_longer_silences_the_flags() -> None:
    # The old rule (σ(-m/T) ≥ 0.7 with T fitted on the noisy labels) flagged none here.
    margins, flipped = planted(4000, 0.25, 4)
    temperature = calibrate_temperature(margins)
    assert np.max(1 / (1 + np.exp(margins / temperature))) < 0.97
    result = flag_suspects(margins, config=SuspectConfig(calibrate=True))
    assert len(result.indices) > 50
    assert flipped[result.indices].mean() > 0.9


def test_ties_are_never_flagged_and_equal_confidences_keep_their_order() -> None:
    margins = np.array([2.0, -3.0, -3.0, 1.0, -4.0, 0.5, -3.0, 2.5])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    result = flag_suspects(
        margins, weights=weights, config=SuspectConfig(flag_share=1.0, threshold=0.0)
    )
    assert 4 not in result.indices and result.confidence[4] == 0.0
    assert result.indices.tolist()[:3] == [1, 2, 6]
    assert result.noise.eligible == 7


def test_each_setting_changes_what_is_flagged() -> None:
    margins, _ = planted(2000, 0.25, 5, strength=1.0)
    base = flag_suspects(margins, config=SuspectConfig())
    n = len(base.indices)
    assert n > 10
    capped = flag_suspects(margins, config=SuspectConfig(max_flagged=5))
    assert capped.indices.tolist() == base.indices[:5].tolist()
    more = flag_suspects(margins, config=SuspectConfig(flag_share=0.5))
    assert len(more.indices) > n and more.indices[:n].tolist() == base.indices.tolist()
    strict = flag_suspects(margins, config=SuspectConfig(flag_share=0.5, threshold=0.7))
    assert 0 < len(strict.indices) < len(more.indices)
    assert strict.confidence[strict.indices].min() >= 0.7
    raw = flag_suspects(margins, config=SuspectConfig(calibrate=False))
    assert raw.temperature == 1.0 and base.temperature != 1.0
    assert not np.allclose(raw.confidence, base.confidence)
    assert raw.expected_precision != base.expected_precision


def test_per_class_thresholds_follow_the_classes_given() -> None:
    margins, _ = planted(2000, 0.2, 6)
    classes = np.arange(2000) % 2
    # Class 1 labels come from a noisier annotator pool: its self-confidence is lower.
    margins[classes == 1] *= 0.3
    probs = 1 / (1 + np.exp(-margins))
    split = estimate_noise(probs, classes=classes)
    pooled = estimate_noise(probs)
    assert split.thresholds[0] > split.thresholds[1]
    assert pooled.thresholds[0] == pooled.thresholds[1]
    assert split.noise_count != pooled.noise_count
    assert sum(map(sum, split.confident_joint)) <= 2000


def test_calibration_recovers_the_temperature_of_simulated_labels() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=2.0, size=20000)
    label_right = rng.random(20000) < 1 / (1 + np.exp(-true_logits))
    margins = np.where(label_right, true_logits, -true_logits) * 3.0  # overconfident by 3
    assert abs(calibrate_temperature(margins) - 3.0) < 0.2


def test_the_refit_pass_trains_without_the_estimated_errors() -> None:
    rng = np.random.default_rng(7)
    n, dim = 300, 8
    prompt = rng.normal(size=(n, dim))
    good, bad = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    good[:, 0] += 1.5  # the preferred response is the one high on the first axis
    flipped = rng.random(n) < 0.25
    chosen = np.where(flipped[:, None], bad, good)
    rejected = np.where(flipped[:, None], good, bad)
    reward = RewardConfig(hidden=16, epochs=60, folds=3)
    groups = [str(i) for i in range(n)]
    with one_thread():
        once = find_suspects(
            prompt,
            chosen,
            rejected,
            groups=groups,
            reward=reward,
            config=SuspectConfig(refit=False, flag_share=0.5),
        )
        twice = find_suspects(
            prompt,
            chosen,
            rejected,
            groups=groups,
            reward=reward,
            config=SuspectConfig(flag_share=0.5),
        )
    assert not once.refitted and twice.refitted and twice.pruned == once.noise.noise_count
    assert not np.allclose(once.margins, twice.margins)
    assert flipped[twice.indices].mean() >= 1.5 * flipped.mean()


NOISE_LEVELS = ((0.0, 0), (0.10, 10), (0.25, 25), (0.40, 40))


@pytest.fixture(scope="module")
def hh_flags(hh_pairs: HHPairs) -> dict[float, tuple[np.ndarray, object]]:
    """The default suspect rule on HH-RLHF pairs with 0, 10, 25 and 40% of labels flipped."""
    with one_thread():
        return _flag_levels(hh_pairs)


def _flag_levels(hh_pairs: HHPairs) -> dict[float, tuple[np.ndarray, object]]:
    out = {}
    for noise, seed in NOISE_LEVELS:
        flipped = np.random.default_rng(seed).random(len(hh_pairs.prompts)) < noise
        chosen = np.where(flipped[:, None], hh_pairs.rejected_emb, hh_pairs.chosen_emb)
        rejected = np.where(flipped[:, None], hh_pairs.chosen_emb, hh_pairs.rejected_emb)
        result = find_suspects(
            hh_pairs.prompt_emb,
            chosen,
            rejected,
            groups=hh_pairs.prompts,
            reward=RewardConfig(),
            config=SuspectConfig(),
        )
        out[noise] = (flipped, result)
    return out


@pytest.mark.slow
def test_the_default_rule_flags_more_pairs_on_noisier_hh_data(hh_flags) -> None:
    counts = [len(hh_flags[noise][1].indices) for noise, _ in NOISE_LEVELS]
    assert counts[0] > 0
    assert counts == sorted(counts) and counts[1] < counts[3], counts
    rates = [hh_flags[noise][1].noise_rate for noise, _ in NOISE_LEVELS]
    assert rates == sorted(rates), rates


@pytest.mark.slow
@pytest.mark.parametrize(("noise", "factor"), [(0.10, 2.0), (0.25, 2.0), (0.40, 1.3)])
def test_flagged_hh_pairs_hold_planted_flips_well_above_their_base_rate(
    hh_flags, noise: float, factor: float
) -> None:
    flipped, result = hh_flags[noise]
    assert len(result.indices) >= 20
    assert flipped[result.indices].mean() >= factor * flipped.mean()
    assert 0.0 < result.expected_precision <= 1.0

from __future__ import annotations

import numpy as np
import pytest

from models_gpu import RewardConfig, calibrate_temperature, flag_suspects, out_of_fold_margins
from tests.models_gpu.conftest import HHPairs


def test_suspects_are_ranked_by_confidence_and_ties_are_never_flagged() -> None:
    margins = np.array([2.0, -3.0, -1.0, 0.5, -4.0])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    result = flag_suspects(margins, threshold=0.6, weights=weights)
    assert result.indices.tolist() == [1, 2]
    np.testing.assert_allclose(result.confidence, 1 / (1 + np.exp(margins)))


def test_calibration_recovers_the_temperature_of_simulated_labels() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=2.0, size=20000)
    label_right = rng.random(20000) < 1 / (1 + np.exp(-true_logits))
    margins = np.where(label_right, true_logits, -true_logits) * 3.0  # overconfident by 3
    assert abs(calibrate_temperature(margins) - 3.0) < 0.2


@pytest.mark.slow
def test_flipped_labels_are_flagged_at_least_twice_as_often_as_chance(hh_pairs: HHPairs) -> None:
    flipped = np.random.default_rng(0).random(len(hh_pairs.prompts)) < 0.2
    chosen = np.where(flipped[:, None], hh_pairs.rejected_emb, hh_pairs.chosen_emb)
    rejected = np.where(flipped[:, None], hh_pairs.chosen_emb, hh_pairs.rejected_emb)
    oof = out_of_fold_margins(
        hh_pairs.prompt_emb, chosen, rejected, groups=hh_pairs.prompts, config=RewardConfig()
    )
    result = flag_suspects(oof.margins, threshold=0.7)
    assert len(result.indices) >= 20
    assert flipped[result.indices].mean() >= 2 * flipped.mean()

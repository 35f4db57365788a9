"""Near-duplicate clusters for out-of-fold folds, and what they fix: inflated held-out accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from models_gpu import (
    BradleyTerryReward,
    RewardConfig,
    fold_groups,
    near_duplicate_groups,
    out_of_fold_margins,
)
from tests.models_gpu.conftest import HHPairs
from tests.threads import one_thread


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def jitter(rows: np.ndarray, rng: np.random.Generator, size: float = 0.25) -> np.ndarray:
    """Near copies of unit rows: cosine about 1/sqrt(1 + size²) (0.97) to the original."""
    noise = rng.normal(scale=size / np.sqrt(rows.shape[1]), size=rows.shape)
    return unit(rows + noise)


def test_chains_of_similar_rows_form_one_cluster_and_exact_groups_are_joined() -> None:
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(4, 64)))
    a = base[0]
    b = unit(a + 0.2 * unit(rng.normal(size=(1, 64)))[0])  # close to a
    c = unit(b + 0.2 * unit(rng.normal(size=(1, 64)))[0])  # close to b, farther from a
    rows = np.vstack([a, base[1], b, base[2], c, base[3]])
    assert rows[0] @ rows[4] < 0.97 < min(rows[0] @ rows[2], rows[2] @ rows[4])
    clusters = near_duplicate_groups(rows, threshold=0.97, block_rows=2)
    assert clusters.tolist() == [0, 1, 0, 2, 0, 3]
    # Rows 1 and 5 share a label, so they share a cluster whatever their vectors.
    joined = near_duplicate_groups(rows, threshold=0.97, groups=["x", "p", "y", "q", "z", "p"])
    assert joined.tolist() == [0, 1, 0, 2, 0, 1]
    alone = near_duplicate_groups(rows, threshold=1.0)
    assert alone.tolist() == [0, 1, 2, 3, 4, 5]


def test_an_encoder_that_cannot_tell_texts_apart_falls_back_to_exact_groups() -> None:
    rng = np.random.default_rng(3)
    # Every vector within a hair of one direction: a chain would join all 40 rows.
    collapsed = unit(1.0 + 1e-3 * rng.normal(size=(40, 16)))
    labels = [f"p{i // 2}" for i in range(40)]
    groups = fold_groups(collapsed, labels, threshold=0.9, folds=5)
    assert len(set(groups.tolist())) == 20
    assert all(groups[i] == groups[i + 1] for i in range(0, 40, 2))
    # A large exact group alone is no reason to drop the near-duplicate links.
    spread = unit(rng.normal(size=(40, 16)))
    spread[39] = jitter(spread[38:39], rng, size=0.05)[0]
    labels = ["same"] * 20 + [f"p{i}" for i in range(20, 40)]
    groups = fold_groups(spread, labels, threshold=0.95, folds=5)
    assert groups[38] == groups[39] and len(set(groups[:20].tolist())) == 1


def test_near_copies_share_a_fold() -> None:
    rng = np.random.default_rng(1)
    n, dim = 60, 16
    prompts = unit(rng.normal(size=(n, dim)))
    copies = jitter(prompts, rng)
    emb = np.vstack([prompts, copies])
    chosen, rejected = rng.normal(size=(2 * n, dim)), rng.normal(size=(2 * n, dim))
    groups = [f"prompt {i}" for i in range(2 * n)]  # the texts differ: exact groups miss them
    config = RewardConfig(hidden=8, epochs=1, folds=4)
    exact = RewardConfig(hidden=8, epochs=1, folds=4, duplicate_cosine=1.0)
    with one_thread():
        fold = out_of_fold_margins(emb, chosen, rejected, groups=groups, config=config).fold
        assert np.array_equal(fold[:n], fold[n:])
        fold = out_of_fold_margins(emb, chosen, rejected, groups=groups, config=exact).fold
        assert not np.array_equal(fold[:n], fold[n:])


@pytest.mark.slow
def test_duplicate_groups_no_longer_inflate_held_out_accuracy_on_hh(hh_pairs: HHPairs) -> None:
    rng = np.random.default_rng(2)
    base, held = np.arange(300), np.arange(600, 1000)
    copies = 3

    def repeat(emb: np.ndarray) -> np.ndarray:
        return np.vstack([jitter(emb[base], rng) for _ in range(copies)])

    prompt, chosen, rejected = (
        repeat(e) for e in (hh_pairs.prompt_emb, hh_pairs.chosen_emb, hh_pairs.rejected_emb)
    )
    # Each copy is a different text (a rephrased prompt): exact-text groups cannot see it.
    groups = [f"{hh_pairs.prompts[i]} [{c}]" for c in range(copies) for i in base]
    config = RewardConfig()
    with one_thread():
        truly_held_out = (
            BradleyTerryReward(config)
            .fit(prompt, chosen, rejected)
            .score(
                hh_pairs.prompt_emb[held], hh_pairs.chosen_emb[held], hh_pairs.rejected_emb[held]
            )
        )
        by_text = out_of_fold_margins(
            prompt, chosen, rejected, groups=groups, config=RewardConfig(duplicate_cosine=1.0)
        ).accuracy
        by_cluster = out_of_fold_margins(
            prompt, chosen, rejected, groups=groups, config=config
        ).accuracy
    print(
        f"truly held out {truly_held_out:.3f}, exact text {by_text:.3f}, clusters {by_cluster:.3f}"
    )
    assert by_text > truly_held_out + 0.05
    assert abs(by_cluster - truly_held_out) < 0.04

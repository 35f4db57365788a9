from __future__ import annotations

import numpy as np
import pytest

from models_gpu import (
    FiFAConfig,
    RewardConfig,
    fifa_select,
    out_of_fold_margins,
    selection_summary,
    text_quality,
)
from tests.models_gpu.conftest import HHPairs


def test_text_quality_penalises_broken_repetitive_and_boilerplate_text() -> None:
    clean = "Paris is the capital of France and its largest city by population."
    scores = text_quality(
        [
            clean,
            "",
            "ok",
            "the same words again " * 30,
            "Paris is the capital of France â€” its largest city Ã© by population.",
            "As an AI language model, I think Paris is the capital of France.",
        ]
    )
    assert scores[0] == 1.0
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores[1:] < scores[0])


def test_the_greedy_selection_never_keeps_two_copies_of_a_prompt() -> None:
    rng = np.random.default_rng(0)
    prompts = rng.standard_normal((300, 16)).astype(np.float32)
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    copies = np.arange(0, 300, 10)
    prompts = np.vstack([prompts, prompts[copies]])
    margins = np.concatenate([rng.normal(size=300), np.full(len(copies), 5.0)])
    result = fifa_select(margins, np.ones(len(margins)), prompts, config=FiFAConfig())
    for original, copy in zip(copies, range(300, len(margins)), strict=True):
        assert not (result.kept[original] and result.kept[copy])
    assert result.kept.sum() == round(0.5 * len(margins))
    assert len(set(result.kept_order.tolist())) == len(result.kept_order)


def test_greedy_and_static_selection_agree_without_neighbours_nearby() -> None:
    rng = np.random.default_rng(1)
    prompts = np.eye(50, dtype=np.float32)  # all pairwise distances equal
    margins = rng.normal(size=50)
    greedy = fifa_select(margins, np.ones(50), prompts, config=FiFAConfig(keep_top=10))
    static = fifa_select(
        margins, np.ones(50), prompts, config=FiFAConfig(keep_top=10, greedy=False)
    )
    np.testing.assert_array_equal(greedy.kept, static.kept)


@pytest.mark.slow
def test_fifa_keeps_confident_diverse_hh_pairs(hh_pairs: HHPairs) -> None:
    # Plant exact duplicates of 50 pairs: their prompts must not both be kept.
    copies = np.arange(0, 500, 10)
    prompt_emb = np.vstack([hh_pairs.prompt_emb, hh_pairs.prompt_emb[copies]])
    chosen_emb = np.vstack([hh_pairs.chosen_emb, hh_pairs.chosen_emb[copies]])
    rejected_emb = np.vstack([hh_pairs.rejected_emb, hh_pairs.rejected_emb[copies]])
    prompts = [*hh_pairs.prompts, *(hh_pairs.prompts[i] for i in copies)]
    chosen = [*hh_pairs.chosen, *(hh_pairs.chosen[i] for i in copies)]
    oof = out_of_fold_margins(
        prompt_emb, chosen_emb, rejected_emb, groups=prompts, config=RewardConfig(seed=0)
    )
    quality = (text_quality(prompts) + text_quality(chosen)) / 2
    result = fifa_select(oof.margins, quality, prompt_emb, config=FiFAConfig(keep_fraction=0.3))
    summary = selection_summary(result, prompt_emb, seed=0)

    assert summary.mean_margin_kept > summary.mean_margin_random
    assert summary.entropy_kept >= summary.entropy_random
    for offset, original in enumerate(copies):
        assert not (result.kept[original] and result.kept[len(hh_pairs.prompts) + offset])


def six_prompts_with_many_pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # The demo project's shape: 89 pairs over 6 distinct prompts.
    rng = np.random.default_rng(seed)
    distinct = rng.standard_normal((6, 16)).astype(np.float32)
    distinct /= np.linalg.norm(distinct, axis=1, keepdims=True)
    prompts = distinct[np.arange(89) % 6]
    return rng.normal(size=89), prompts


def test_when_diversity_runs_out_fill_tops_up_by_importance_and_says_why() -> None:
    margins, prompts = six_prompts_with_many_pairs()
    result = fifa_select(margins, np.ones(89), prompts, config=FiFAConfig(keep_fraction=0.3))

    assert result.requested == round(0.3 * 89) == result.kept.sum() == 27
    assert result.kept_diverse == 6 and result.filled == 21
    assert (
        "kept 6 of the 27" in result.short_reason and "filled the other 21" in result.short_reason
    )
    # The diverse pairs come first, one per prompt; the filled ones are the most important rest.
    first = result.kept_order[:6]
    assert len({tuple(prompts[i]) for i in first}) == 6
    rest = np.setdiff1d(np.arange(89), first)
    best_rest = rest[np.argsort(-result.importance[rest], kind="stable")][:21]
    assert set(result.kept_order[6:].tolist()) == set(best_rest.tolist())


def test_when_diversity_runs_out_stop_keeps_only_the_diverse_pairs_and_says_why() -> None:
    margins, prompts = six_prompts_with_many_pairs()
    result = fifa_select(
        margins, np.ones(89), prompts, config=FiFAConfig(keep_fraction=0.3, when_short="stop")
    )

    assert result.kept.sum() == result.kept_diverse == 6
    assert result.requested == 27 and result.filled == 0
    assert "kept 6 of the 27" in result.short_reason and "when_short='stop'" in result.short_reason


def test_a_selection_that_reaches_its_size_gives_no_short_reason() -> None:
    rng = np.random.default_rng(2)
    prompts = np.eye(40, dtype=np.float32)
    result = fifa_select(rng.normal(size=40), np.ones(40), prompts, config=FiFAConfig(keep_top=8))
    assert result.short_reason is None and result.filled == 0 and result.kept_diverse == 8


def test_an_unknown_when_short_is_refused() -> None:
    with pytest.raises(ValueError, match="when_short"):
        FiFAConfig(when_short="pad")

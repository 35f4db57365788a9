"""Routing maths: instance features, the built-in tagger, both strategies against random."""

from __future__ import annotations

import numpy as np
import pytest

from models_gpu.config import RoutingConfig
from models_gpu.routing import (
    JudgeSignals,
    PairEmbeddings,
    PrototypeTagger,
    bin_by_percentile,
    cross_fitted_scores,
    evaluate_routing,
    instance_features,
    judge_correctness,
    lcs_length,
    mix_reward_accuracies,
    mixed_label_accuracy,
    prior_scores,
    reward_accuracy,
    rouge_l,
    route_items,
    token_overlap,
    tokens,
)


def _lcs_table(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_the_bit_parallel_lcs_matches_the_dynamic_programme():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = list(rng.choice(list("abcde"), size=rng.integers(0, 40)))
        b = list(rng.choice(list("abcde"), size=rng.integers(0, 40)))
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_rouge_l_and_token_overlap_on_known_pairs():
    a = tokens("The cat sat on the mat")
    b = tokens("the cat lay on the mat")
    # LCS "the cat on the mat" = 5 of 6 tokens each way.
    assert rouge_l(a, b) == pytest.approx(5 / 6)
    assert rouge_l(a, a) == 1.0 and rouge_l(a, []) == 0.0
    # Sets {the, cat, sat, on, mat} and {the, cat, lay, on, mat}: 4 shared of 6.
    assert token_overlap(a, b) == pytest.approx(4 / 6)


def test_percentile_bins_split_values_into_thirds():
    codes = bin_by_percentile(np.arange(90.0))
    assert np.bincount(codes).tolist() == [30, 30, 30]
    assert codes[0] == 0 and codes[-1] == 2


def _hash_embed(texts: list[str], dim: int = 64) -> np.ndarray:
    """A bag-of-words embedder: each word adds a fixed random vector (cosine ≈ word overlap)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in tokens(text):
            seed = int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little") % (2**32)
            out[i] += np.random.default_rng(seed).normal(size=dim)
    return out


def test_features_hold_lexical_thirds_clusters_tags_and_judge_signals():
    prompts = [f"write a python function number {i} " + "word " * i for i in range(30)]
    a = [f"def f(): return {i}" for i in range(30)]
    b = [f"def f(): return {i} + 1 " + "extra " * (i % 5) for i in range(30)]
    p_emb, a_emb, b_emb = _hash_embed(prompts), _hash_embed(a), _hash_embed(b)
    tagger = PrototypeTagger().fit(_hash_embed)
    signals = JudgeSignals(
        position_inconsistent=np.arange(30) % 3 == 0,
        abstained=np.zeros(30, bool),
        confidence=np.linspace(0.5, 1.0, 30),
    )
    features = instance_features(prompts, a, b, p_emb, a_emb, b_emb, tagger=tagger, signals=signals)
    for name in ("prompt_length", "length_difference", "rouge_l", "embedding_cosine"):
        for third in ("low", "mid", "high"):
            assert f"{name}={third}" in features.names
    assert features.column("prompt_length=high").sum() == 10
    assert (
        features.values[29]["prompt_length"] == 35
        and features.values[29]["prompt_length_bin"] == "high"
    )
    assert features.column("position_inconsistent").sum() == 10
    assert any(n.startswith("cluster=") for n in features.names)
    # Every prompt asks for a python function: the built-in tagger calls them coding.
    assert {v["domain"] for v in features.values} == {"coding"}
    assert features.matrix.shape == (30, len(features.names))


def test_judge_correctness_counts_ties_and_abstentions_as_a_coin_flip():
    human = np.array([1.0, -1.0, 1.0, 1.0, np.nan, 0.0])
    ai = np.array([1.0, 1.0, 0.0, np.nan, 1.0, 1.0])
    correct = judge_correctness(human, ai)
    assert correct[:4].tolist() == [1.0, 0.0, 0.5, 0.5]
    assert np.isnan(correct[4:]).all()
    assert mixed_label_accuracy(human, ai, np.array([0, 1, 0, 0, 0, 0], bool)) == 0.75


def _synthetic(n: int, seed: int = 0):
    """Items whose human label follows a hidden direction of the embeddings; the judge is
    wrong on most items with long prompts and right elsewhere, whatever the text says."""
    rng = np.random.default_rng(seed)
    dim = 16
    direction = rng.normal(size=dim)
    prompt_emb = rng.normal(size=(n, dim)).astype(np.float32)
    a_emb = rng.normal(size=(n, dim)).astype(np.float32)
    b_emb = rng.normal(size=(n, dim)).astype(np.float32)
    human = np.where((a_emb - b_emb) @ direction > 0, 1.0, -1.0)
    lengths = rng.integers(1, 60, size=n)
    prompts = ["word " * int(k) for k in lengths]
    long = lengths > np.quantile(lengths, 2 / 3)
    wrong = long & (rng.random(n) < 0.8) | ~long & (rng.random(n) < 0.05)
    ai = np.where(wrong, -human, human)
    texts_a = ["answer"] * n
    texts_b = ["reply"] * n
    features = instance_features(
        prompts, texts_a, texts_b, prompt_emb, a_emb, b_emb, config=RoutingConfig(clusters=2)
    )
    return features, human, ai, PairEmbeddings(prompt_emb, a_emb, b_emb), long


@pytest.mark.slow
def test_both_strategies_beat_random_where_one_feature_decides_where_the_judge_errs():
    features, human, ai, emb, long = _synthetic(240)
    # 24 simulated mixes (the default is 48) halve the time; 48 gave the same ranking.
    config = RoutingConfig(folds=3, mixes=24, clusters=2, seed=1)
    rows = evaluate_routing(features, human, ai, emb, config=config, budgets=(0.25,), reward=False)
    accuracy = {r["strategy"]: r["label_accuracy"] for r in rows}
    assert accuracy["error"] > accuracy["random"] + 0.10
    assert accuracy["gain"] > accuracy["random"] + 0.03
    # The error model puts the long prompts first.
    scores = cross_fitted_scores("error", features, human, ai, emb, config=config)
    assert scores[long].mean() > scores[~long].mean() + 0.3


def test_without_doubly_labelled_items_routing_falls_back_to_the_prior_and_says_so():
    features, human, ai, emb, _ = _synthetic(60)
    inconsistent = np.arange(60) % 4 == 0
    features = instance_features(
        ["p"] * 60,
        ["a"] * 60,
        ["b"] * 60,
        emb.prompt,
        emb.a,
        emb.b,
        signals=JudgeSignals(inconsistent, np.zeros(60, bool), np.full(60, np.nan)),
        config=RoutingConfig(clusters=2),
    )
    result = route_items(
        features, np.full(60, np.nan), ai, emb, config=RoutingConfig(budget=0.25, strategy="gain")
    )
    assert result.used == "prior" and "prior" in result.fallback
    assert result.to_human.sum() == 15
    assert result.to_human[inconsistent].all()
    assert np.argmax(prior_scores(features)) in np.flatnonzero(inconsistent)


def _learnable_pairs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    dim = 16
    direction = rng.normal(size=dim)
    emb = PairEmbeddings(
        rng.normal(size=(n, dim)).astype(np.float32),
        rng.normal(size=(n, dim)).astype(np.float32),
        rng.normal(size=(n, dim)).astype(np.float32),
    )
    labels = np.where((emb.a - emb.b) @ direction > 0, 1.0, -1.0)
    return emb, labels


def test_stacked_mixes_train_one_independent_head_each():
    emb, labels = _learnable_pairs(300, seed=3)
    train, test = np.arange(240), np.arange(240, 300)
    config = RoutingConfig(seed=0)
    mixes = np.stack([labels[train], -labels[train], np.zeros(240), labels[train]])
    mixes[3, ::2] = 0  # half the pairs left out (ties)
    got = mix_reward_accuracies(
        emb.take(train), mixes, emb.take(test), labels[test], config=config, seed=0
    )
    assert got[0] > 0.8  # learns the direction
    assert got[1] < 0.2  # reversed labels: a head of its own, learning the reverse
    assert got[2] == 0.5  # nothing to train on
    assert got[3] > 0.75
    # Each head as good as the same head trained alone (same seed; dropout draws differ).
    alone = [
        reward_accuracy(emb.take(train), mix, emb.take(test), labels[test], config=config, seed=0)
        for mix in mixes
    ]
    assert np.abs(got - np.array(alone)).max() <= 0.1, (got, alone)


def test_stacked_mixes_without_test_labels_are_nan():
    emb, labels = _learnable_pairs(20, seed=1)
    got = mix_reward_accuracies(
        emb.take(np.arange(10)),
        labels[None, :10],
        emb.take(np.arange(10, 20)),
        np.zeros(10),
        config=RoutingConfig(),
        seed=0,
    )
    assert np.isnan(got).all()

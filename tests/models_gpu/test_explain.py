"""Explaining preferences with SAE features (WIMHF): inputs, links to labels, groups, names.

The HH-RLHF tests plant a signal in real pairs (a fixed phrase appended to the chosen
response of a third of them) and check that the explanation finds it; they embed with
MiniLM through the session fixture ``hh_pairs`` (tests/models_gpu/conftest.py), computing
only the planted responses anew.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import numpy as np
import pytest

from models_gpu import (
    ExplainConfig,
    PreferencePair,
    SAEConfig,
    embed_texts,
    explain_preferences,
    name_features,
    ngram_spans,
    prepare_inputs,
)
from tests.models_gpu.conftest import TEST_EMBEDDING

PHRASE = "I hope this helps, and have a wonderful day!"
WORDS = ["the", "a", "of", "to", "and", "cat", "dog", "tree", "river", "stone", "cloud"]
WORDS += ["music", "paper", "bread", "window", "garden"]


BASIS = dict(
    zip(
        [*WORDS, "sparkle"],
        np.linalg.qr(np.random.default_rng(0).normal(size=(32, 32)))[0][:17],
        strict=True,
    )
)


def word_embed(texts: list[str]) -> np.ndarray:
    """A cheap, deterministic bag-of-words embedding: the test's words get orthonormal
    vectors, any other word a fixed random one."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            word = word.strip(".,!?")
            vector = BASIS.get(word)
            if vector is None:
                vector = np.random.default_rng(zlib.crc32(word.encode())).normal(size=32) / 6
            out[row] += vector
    return out


def word_pairs(n: int, seed: int = 0, marker: str = "sparkle") -> list[PreferencePair]:
    """Random word salads; A wins whenever it alone carries ``marker``, else a coin flip."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        a = " ".join(rng.choice(WORDS, size=rng.integers(5, 15)))
        b = " ".join(rng.choice(WORDS, size=rng.integers(5, 15)))
        side = rng.integers(3)  # 0: marker in A, 1: in B, 2: nowhere
        if side == 0:
            a += f" {marker} {marker}"
        elif side == 1:
            b += f" {marker} {marker}"
        label = 1 if side == 0 else 0 if side == 1 else int(rng.integers(2))
        pairs.append(PreferencePair(f"p{i}", f"prompt {i % (n // 2 or 1)}", a, b, label))
    return pairs


SMALL = ExplainConfig(sae=SAEConfig(n_features=8, k_active=2, max_epochs=15), sparse_sizes=(2, 4))


def test_empty_input_and_bad_labels_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="empty"):
        explain_preferences([], word_embed, SMALL)
    tie = PreferencePair("x", "p", "a", "b", 2)
    with pytest.raises(ValueError, match="labels must be 1"):
        explain_preferences([tie], word_embed, SMALL)


def test_a_single_pair_gives_features_without_held_out_figures() -> None:
    only = word_pairs(1)
    explanation = explain_preferences(only, word_embed, SMALL)
    assert explanation.n_pairs == 1 and explanation.n_held_out == 0
    assert explanation.activations.shape == (1, 8)
    assert explanation.probes.auc_full is None and explanation.probes.auc_sparse[2] is None
    assert len(explanation.features) == 8
    json.dumps(explanation.to_dict(include_activations=True), allow_nan=False)


def test_fewer_pairs_than_features_and_one_label_class_still_work() -> None:
    pairs = [
        replace(p, label=1)
        if p.label == 1
        else replace(p, text_a=p.text_b, text_b=p.text_a, label=1)
        for p in word_pairs(12)
    ]
    assert {p.label for p in pairs} == {1}
    explanation = explain_preferences(
        pairs, word_embed, replace(SMALL, sae=SAEConfig(n_features=32, k_active=4))
    )
    assert explanation.n_pairs == 12 < 32
    assert explanation.activations.shape == (12, 32)
    for report in explanation.features:
        assert np.isfinite([report.coef, report.ci_low, report.ci_high, report.p_value]).all()
        assert 0.0 <= report.p_bonferroni <= 1.0
    # The held-out AUCs are computed over ±rows, so one class of labels is no obstacle.
    assert explanation.probes.auc_length_only is not None
    json.dumps(explanation.to_dict(), allow_nan=False)


def test_swapped_duplicates_are_one_pair_and_each_annotator_keeps_one_judgement() -> None:
    pairs = [
        PreferencePair("1", "p", "alpha", "beta", 1, annotator="ann"),
        PreferencePair("1b", "p", "beta", "alpha", 1, annotator="bob"),  # B-first: bob prefers beta
        PreferencePair("1", "p", "alpha", "beta", 0, annotator="ann"),  # ann changed her mind
        PreferencePair("2", "p", "alpha", "gamma", 1),
        PreferencePair("3", "q", "alpha", "beta", 1),  # same texts, another prompt
    ]
    prepared = prepare_inputs(pairs, word_embed, SMALL)
    assert prepared.pair_ids == ["1", "2", "3"]
    assert prepared.judgement_pair.tolist() == [0, 0, 1, 2]
    assert prepared.judgement_annotator == ["bob", "ann", "", ""]
    # Both judgements of pair 1 read in its first orientation (A = alpha): both preferred beta.
    assert prepared.judgement_label.tolist() == [0, 0, 1, 1]
    assert np.allclose(prepared.delta[0], word_embed(["alpha"])[0] - word_embed(["beta"])[0])


def test_no_prompt_is_on_both_sides_of_the_split() -> None:
    prepared = prepare_inputs(word_pairs(200), word_embed, SMALL)
    held = set(prepared.prompt_group[prepared.held_out])
    train = set(prepared.prompt_group[~prepared.held_out])
    assert held and train and not held & train
    assert 0.1 < prepared.held_out.mean() < 0.3


def test_a_planted_word_becomes_a_significant_named_feature() -> None:
    pairs = word_pairs(600)
    config = replace(SMALL, sae=SAEConfig(n_features=16, k_active=2, max_epochs=15))
    explanation = explain_preferences(pairs, word_embed, config)
    top = explanation.features[0]
    assert top.p_bonferroni < 0.01 and top.coef > 0
    assert top.ci_low > 0
    assert top.ngrams_high[0]["ngram"].startswith("sparkle")
    high_sides = [
        (pairs[int(i)].text_b if e["swapped"] else pairs[int(i)].text_a)
        for e in top.examples
        for i in [explanation.pair_ids.index(e["pair_id"])]
    ]
    assert sum("sparkle" in text for text in high_sides) >= 0.75 * len(high_sides)
    assert explanation.probes.auc_sparse[2] > 0.75
    assert top.index in explanation.probes.selected[2]

    def propose(examples: list[tuple[str, str]]) -> str:
        return (
            "mentions sparkle"
            if sum("sparkle" in high for high, _ in examples) > len(examples) / 2
            else "other"
        )

    def faithful(name: str, a: str, b: str) -> float:
        return float(a.count("sparkle") - b.count("sparkle")) if "sparkle" in name else 0.0

    def random_judge(name: str, a: str, b: str) -> float:
        return float(zlib.crc32((name + a + b).encode()) % 7)

    named = name_features(explanation, pairs, propose, faithful, SMALL, features=[top.index])
    assert named == [top]
    assert top.name == "mentions sparkle" and top.fidelity_r > 0.5 and top.fidelity_p < 0.05
    name_features(explanation, pairs, propose, random_judge, SMALL, features=[top.index])
    assert top.proposed_name == "mentions sparkle" and top.name is None
    assert top.fidelity_p is not None and top.fidelity_p > 0.05 or top.fidelity_r <= 0
    json.dumps(explanation.to_dict(), allow_nan=False)


def test_ngram_spans_point_at_the_words_in_the_original_text() -> None:
    text = "I hope THIS helps! This helps, really."
    spans = ngram_spans(text, ["this helps", "really"])
    assert [text[s:e] for s, e in spans] == ["THIS helps", "This helps", "really"]
    assert ngram_spans("I hope this helps!", ["this helps"]) == [(7, 17)]
    assert ngram_spans("abc", []) == []


# ---------------------------------------------------------------------------------------
# HH-RLHF harmless with a planted phrase

HH_CONFIG = ExplainConfig()


def hh_embed(hh_pairs):
    known = {t: v for t, v in zip(hh_pairs.chosen, hh_pairs.chosen_emb, strict=True)}
    known.update(zip(hh_pairs.rejected, hh_pairs.rejected_emb, strict=True))

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, embed_texts(missing, config=TEST_EMBEDDING), strict=True))
        return np.stack([known[t] for t in texts])

    return embed


def hh_preferences(hh_pairs, *, plant: bool) -> list[PreferencePair]:
    """A random half of the pairs shows the chosen response as B; the phrase goes on chosen."""
    rng = np.random.default_rng(0)
    n = len(hh_pairs.chosen)
    planted, chosen_is_b = rng.random(n) < 1 / 3, rng.random(n) < 0.5
    pairs = []
    for i, (prompt, good, bad) in enumerate(
        zip(hh_pairs.prompts, hh_pairs.chosen, hh_pairs.rejected, strict=True)
    ):
        good = f"{good} {PHRASE}" if plant and planted[i] else good
        a, b, label = (bad, good, 0) if chosen_is_b[i] else (good, bad, 1)
        pairs.append(PreferencePair(str(i), prompt, a, b, label))
    return pairs


def phrase_feature(explanation, pairs):
    """The feature whose top examples carry the phrase on their high side most often."""
    by_id = {p.pair_id: p for p in pairs}

    def carried(report) -> int:
        return sum(
            PHRASE in (by_id[e["pair_id"]].text_b if e["swapped"] else by_id[e["pair_id"]].text_a)
            for e in report.examples
        )

    best = max(explanation.features, key=carried)
    return best, carried(best)


@pytest.fixture(scope="module")
def hh_explained(hh_pairs):
    embed = hh_embed(hh_pairs)
    plain = hh_preferences(hh_pairs, plant=False)
    planted = hh_preferences(hh_pairs, plant=True)
    return (
        (plain, explain_preferences(plain, embed, HH_CONFIG)),
        (planted, explain_preferences(planted, embed, HH_CONFIG)),
    )


@pytest.mark.slow
def test_a_planted_phrase_surfaces_as_a_significant_feature_and_lifts_the_sparse_probe(
    hh_explained,
) -> None:
    (plain_pairs, plain), (pairs, planted) = hh_explained
    feature, carrying = phrase_feature(planted, pairs)
    assert carrying >= 0.75 * len(feature.examples), feature.examples
    assert feature.coef > 0 and feature.p_bonferroni < 0.001
    assert feature.ci_low > 0
    assert planted.features.index(feature) < 3  # among the top of the ranking
    phrase_words = set(PHRASE.lower().replace(",", "").replace("!", "").split())
    assert any(set(g["ngram"].split()) <= phrase_words for g in feature.ngrams_high[:3])
    assert set(feature.stats["high"]) == {
        "words",
        "lists",
        "code",
        "headings",
        "refusals",
        "questions",
    }
    assert feature.index in planted.probes.selected[5]

    # The phrase lengthens the chosen responses, which cancels HH-harmless's own length
    # signal (its chosen responses are the shorter ones: length-only AUC 0.58 unplanted,
    # 0.52 planted). So the sparse probes are compared by what they add over length,
    # averaged over the probe sizes: one size's AUC on a few hundred held-out pairs moves by
    # about 0.03 between float32 and bfloat16 embeddings (5 features: lift 0.051 over the
    # unplanted data in float32, 0.028 in bfloat16; the mean over sizes: 0.051 and 0.041).
    def mean_lift(probes) -> float:
        sizes = HH_CONFIG.sparse_sizes
        return sum(probes.auc_sparse[k] - probes.auc_length_only for k in sizes) / len(sizes)

    assert mean_lift(planted.probes) > mean_lift(plain.probes) + 0.03, (
        planted.probes,
        plain.probes,
    )
    assert planted.probes.auc_full > plain.probes.auc_full + 0.05
    # Unplanted, no feature's top examples carry the phrase (it is not in the data).
    assert phrase_feature(plain, plain_pairs)[1] == 0
    json.dumps(planted.to_dict(), allow_nan=False)


@pytest.mark.slow
def test_groups_that_reward_and_punish_the_phrase_get_opposite_effects(hh_pairs) -> None:
    """Each pair is judged by one "likes" and one "dislikes" annotator (six of each): the
    former prefers the response with the phrase, the latter the other one; pairs without
    the phrase keep their HH label for both. Two "small" annotators fall below the minimum."""
    embed = hh_embed(hh_pairs)
    base = hh_preferences(hh_pairs, plant=False)
    rng = np.random.default_rng(1)
    pairs = []
    for pair in base:
        side = rng.integers(3)  # the phrase on A, on B, or nowhere
        a = f"{pair.text_a} {PHRASE}" if side == 0 else pair.text_a
        b = f"{pair.text_b} {PHRASE}" if side == 1 else pair.text_b
        for stance in ("likes", "dislikes"):
            label = pair.label if side == 2 else int((side == 0) == (stance == "likes"))
            annotator = f"{stance}-{rng.integers(6)}"
            groups = {"stance": stance, "country": "XX" if annotator.endswith("0") else "US"}
            pairs.append(PreferencePair(pair.pair_id, pair.prompt, a, b, label, annotator, groups))
    explanation = explain_preferences(pairs, embed, HH_CONFIG)
    assert explanation.n_judgements == 2 * len(base)
    feature, carrying = phrase_feature(explanation, pairs)
    assert carrying >= 0.75 * len(feature.examples)
    effects = {(e.field, e.value): e for e in feature.group_effects}
    likes, dislikes = effects[("stance", "likes")], effects[("stance", "dislikes")]
    assert likes.coef > 0 and likes.ci_low > 0
    assert dislikes.coef < 0 and dislikes.ci_high < 0
    assert likes.interaction_p < 0.001 and dislikes.interaction_p < 0.001
    assert likes.n_annotators == 6 and likes.n_judgements == len(base)
    # Country XX has only the two "-0" annotators: below min_group_annotators, not shown.
    assert ("country", "XX") not in effects and ("country", "US") in effects
    probes = {(g.field, g.value): g for g in explanation.groups}
    assert set(probes) == {("stance", "likes"), ("stance", "dislikes"), ("country", "US")}
    for stance, sign in (("likes", 1), ("dislikes", -1)):
        weights = {f["index"]: f["weight"] for f in probes[("stance", stance)].top_features}
        assert sign * weights[feature.index] > 0
    json.dumps(explanation.to_dict(), allow_nan=False)


def test_one_seed_gives_the_same_explanation_twice() -> None:
    pairs = word_pairs(200)
    first = explain_preferences(pairs, word_embed, SMALL)
    second = explain_preferences(pairs, word_embed, SMALL)
    assert np.array_equal(first.activations, second.activations)
    assert first.to_dict() == second.to_dict()
    other = explain_preferences(pairs, word_embed, replace(SMALL, sae=replace(SMALL.sae, seed=1)))
    assert not np.array_equal(other.activations, first.activations)


def test_progress_rises_from_zero_to_one_with_messages() -> None:
    seen: list[tuple[float, str]] = []
    explain_preferences(
        word_pairs(60), word_embed, SMALL, progress=lambda f, m: seen.append((f, m))
    )
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in seen)

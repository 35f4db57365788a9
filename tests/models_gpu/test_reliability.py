"""Dawid–Skene and MACE fits on simulated annotators whose behaviour is planted."""

from __future__ import annotations

import numpy as np
import pytest

from models_gpu.reliability import DawidSkeneConfig, DawidSkeneFit, fit_dawid_skene

A_BETTER, B_BETTER, TIE = 0, 1, 2


def simulate_pairwise(seed: int, *, n_items: int = 600, per_item: int = 3) -> dict:
    """Honest annotators (accuracy 0.7–0.9), two spammers (uniform answers), two adversaries
    (A and B swapped). Every item gets ``per_item`` distinct annotators."""
    rng = np.random.default_rng(seed)
    n_honest, spammers, adversaries = 12, [12, 13], [14, 15]
    n_annotators = n_honest + len(spammers) + len(adversaries)
    accuracy = rng.uniform(0.7, 0.9, n_annotators)
    truth = rng.choice(3, size=n_items, p=[0.45, 0.45, 0.1])
    items = np.repeat(np.arange(n_items), per_item)
    annotators = np.concatenate(
        [rng.choice(n_annotators, per_item, replace=False) for _ in range(n_items)]
    )
    true_class = truth[items]
    honest_answer = np.where(
        rng.random(items.size) < accuracy[annotators],
        true_class,
        (true_class + rng.integers(1, 3, items.size)) % 3,
    )
    swapped = np.choose(true_class, [B_BETTER, A_BETTER, TIE])
    labels = np.where(np.isin(annotators, adversaries), swapped, honest_answer)
    labels = np.where(np.isin(annotators, spammers), rng.integers(0, 3, items.size), labels)
    return {
        "truth": truth,
        "items": items,
        "annotators": annotators,
        "labels": labels,
        "honest": np.arange(n_honest),
        "planted": np.array(spammers + adversaries),
    }


def majority_accuracy(items: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> float:
    """Plain vote counting, ties between the top labels counted as wrong: the baseline."""
    correct = 0
    for item, true_label in enumerate(truth):
        counts = np.bincount(labels[items == item], minlength=3)
        winners = np.flatnonzero(counts == counts.max())
        correct += len(winners) == 1 and winners[0] == true_label
    return correct / len(truth)


@pytest.mark.parametrize("model", ["dawid-skene", "mace"])
def test_planted_spammers_and_adversaries_get_the_lowest_reliabilities(model: str) -> None:
    data = simulate_pairwise(seed=7)
    fit = fit_dawid_skene(
        data["items"], data["annotators"], data["labels"], 3, config=DawidSkeneConfig(model=model)
    )
    assert fit.converged
    assert fit.reliability[data["planted"]].max() < fit.reliability[data["honest"]].min()


def test_the_posterior_labels_beat_the_majority_vote() -> None:
    data = simulate_pairwise(seed=11)
    fit = fit_dawid_skene(data["items"], data["annotators"], data["labels"], 3)
    posterior_accuracy = float(np.mean(fit.labels == data["truth"]))
    baseline = majority_accuracy(data["items"], data["labels"], data["truth"])
    assert posterior_accuracy > baseline + 0.05, (posterior_accuracy, baseline)


def test_the_fit_is_a_consistent_probability_model() -> None:
    data = simulate_pairwise(seed=3, n_items=200)
    fit = fit_dawid_skene(data["items"], data["annotators"], data["labels"], 3)
    assert isinstance(fit, DawidSkeneFit)
    assert fit.posterior.shape == (200, 3)
    np.testing.assert_allclose(fit.posterior.sum(axis=1), 1.0)
    np.testing.assert_allclose(fit.confusion.sum(axis=2), 1.0)
    np.testing.assert_array_equal(fit.labels, fit.posterior.argmax(axis=1))
    np.testing.assert_allclose(fit.confidence, fit.posterior.max(axis=1))
    assert ((fit.reliability >= 0) & (fit.reliability <= 1)).all()
    np.testing.assert_array_equal(fit.annotator_votes, np.bincount(data["annotators"]))
    assert np.isfinite(fit.log_likelihood) and fit.log_likelihood < 0


def test_em_never_lowers_the_likelihood_it_reports() -> None:
    data = simulate_pairwise(seed=5, n_items=300)
    likelihoods = [
        fit_dawid_skene(
            data["items"],
            data["annotators"],
            data["labels"],
            3,
            config=DawidSkeneConfig(max_iter=steps, tol=0.0, smoothing=1e-3),
        ).log_likelihood
        for steps in (1, 2, 5, 20)
    ]
    assert likelihoods == sorted(likelihoods)
    assert likelihoods[-1] > likelihoods[0]


def test_gold_items_are_clamped_and_expose_an_adversary_the_votes_alone_cannot() -> None:
    # Two annotators on every item: one honest, one always answering the opposite. Without
    # gold the model cannot tell which of the two mirrors the other; three gold items can.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 100)
    items = np.repeat(np.arange(100), 2)
    annotators = np.tile([0, 1], 100)
    labels = np.where(annotators == 0, truth[items], 1 - truth[items])
    # the adversary casts more votes on extra items, so the majority of votes is theirs
    extra = np.arange(100, 140)
    truth = np.concatenate([truth, rng.integers(0, 2, 40)])
    items = np.concatenate([items, extra])
    annotators = np.concatenate([annotators, np.ones(40, dtype=int)])
    labels = np.concatenate([labels, 1 - truth[extra]])

    gold = {item: int(truth[item]) for item in (0, 1, 2)}
    anchored = fit_dawid_skene(items, annotators, labels, 2, gold=gold)
    np.testing.assert_array_equal(anchored.posterior[[0, 1, 2]], np.eye(2)[truth[[0, 1, 2]]])
    assert anchored.reliability[0] > 0.9 > 0.1 > anchored.reliability[1]
    assert np.mean(anchored.labels == truth) == 1.0

    flipped_gold = {item: 1 - label for item, label in gold.items()}
    misled = fit_dawid_skene(items, annotators, labels, 2, gold=flipped_gold)
    assert misled.reliability[1] > misled.reliability[0]


def test_a_gold_item_without_votes_still_counts() -> None:
    fit = fit_dawid_skene([0, 0], [0, 1], [1, 1], 2, gold={3: 0})
    assert fit.posterior.shape == (4, 2)
    assert fit.labels[3] == 0 and fit.confidence[3] == 1.0


def test_ordinal_ratings_keep_a_sparse_annotator_near_the_diagonal() -> None:
    # Ratings 0..4. Five regular raters answer truth ± 1 at most; a newcomer rated two
    # items, both 4, which the others rated 4. What do we believe they say for a 1?
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 5, 150)
    items = np.repeat(np.arange(150), 5)
    annotators = np.tile(np.arange(5), 150)
    noise = rng.choice([-1, 0, 0, 0, 1], size=items.size)
    labels = np.clip(truth[items] + noise, 0, 4)
    top = np.flatnonzero(truth == 4)[:2]
    items = np.concatenate([items, top])
    annotators = np.concatenate([annotators, [5, 5]])
    labels = np.concatenate([labels, [4, 4]])

    ordinal = fit_dawid_skene(items, annotators, labels, 5, config=DawidSkeneConfig(ordinal=True))
    flat = fit_dawid_skene(items, annotators, labels, 5)
    newcomer_row = ordinal.confusion[5, 1]
    # under the ordinal prior, the unseen row peaks at the true class and decays with distance
    assert newcomer_row.argmax() == 1
    assert newcomer_row[0] > newcomer_row[3] and newcomer_row[2] > newcomer_row[4]
    np.testing.assert_allclose(flat.confusion[5, 1], 0.2, atol=1e-6)
    # and the regular raters' off-by-one habit is learned: better than the most frequent rating
    counts = np.zeros((150, 5))
    np.add.at(counts, (items, labels), 1)
    assert ordinal.converged
    assert np.mean(ordinal.labels == truth) > np.mean(counts.argmax(axis=1) == truth) + 0.03


def test_ordinal_fit_turns_near_misses_into_the_right_rating() -> None:
    # Three raters, each too generous or too strict by one step half of the time.
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 7, 400)
    items = np.repeat(np.arange(400), 3)
    annotators = np.tile(np.arange(3), 400)
    bias = np.array([1, -1, 0])[annotators]
    labels = np.clip(truth[items] + np.where(rng.random(items.size) < 0.5, bias, 0), 0, 6)
    fit = fit_dawid_skene(items, annotators, labels, 7, config=DawidSkeneConfig(ordinal=True))
    # rater 0 says truth+1 half the time: its confusion mass sits on and right of the diagonal
    assert fit.confusion[0, 3, 4] > 0.3 and fit.confusion[0, 3, 2] < 0.1
    assert fit.confusion[1, 3, 2] > 0.3 and fit.confusion[1, 3, 4] < 0.1
    assert np.mean(fit.labels == truth) > 0.95


def test_random_start_is_seeded() -> None:
    data = simulate_pairwise(seed=4, n_items=100)
    arguments = (data["items"], data["annotators"], data["labels"], 3)
    first = fit_dawid_skene(*arguments, config=DawidSkeneConfig(init="random", seed=1))
    again = fit_dawid_skene(*arguments, config=DawidSkeneConfig(init="random", seed=1))
    np.testing.assert_array_equal(first.posterior, again.posterior)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (([0, 1], [0], [0, 1], 2), "same length"),
        (([0, -1], [0, 0], [0, 1], 2), "items must not be negative"),
        (([0, 1], [0, 0], [0, 2], 2), "labels must lie in 0..1"),
        (([0, 1], [0, 0], [0, 1], 1), "n_classes"),
        (([0.5, 1], [0, 0], [0, 1], 2), "items must hold integers"),
    ],
)
def test_bad_input_is_refused_with_the_reason(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_dawid_skene(*arguments)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="smoothing"):
        DawidSkeneConfig(smoothing=0)
    with pytest.raises(ValueError, match="model"):
        DawidSkeneConfig(model="glad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gold labels"):
        fit_dawid_skene([0], [0], [0], 2, gold={0: 5})

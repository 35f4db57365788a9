"""Agreement statistics, checked against reference implementations on real annotations."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pytest

from curation.agreement import (
    PAIR_FIRST_BETTER,
    PAIR_SECOND_BETTER,
    PAIR_TIE,
    AgreementScore,
    annotator_majority_agreement,
    cohen_kappa,
    fleiss_counts,
    fleiss_kappa,
    gold_accuracy,
    gold_accuracy_by_annotator,
    krippendorff_alpha,
    median,
    rankings_to_pairwise,
    reliability_data_from_triples,
)
from tests.datasets import ROOT as DATASETS_ROOT

krippendorff = pytest.importorskip(
    "krippendorff", reason="the krippendorff package is the reference"
)

SQUALITY = DATASETS_ROOT / "squality_human_eval" / "all-responses.jsonl"
TULU = DATASETS_ROOT / "tulu1_human_eval" / "eval_annotations_tulu_1.jsonl"
ASPECTS = ("correctness", "selection", "overall")

needs_squality = pytest.mark.skipif(
    not SQUALITY.exists(), reason=f"real SQuALITY annotations not present at {SQUALITY}"
)
needs_tulu = pytest.mark.skipif(
    not TULU.exists(), reason=f"real Tulu-1 annotations not present at {TULU}"
)


def reference_alpha(data: Mapping[Hashable, Mapping[Hashable, Any]], level: str) -> float:
    """Alpha from the ``krippendorff`` package on the same reliability data (numeric values)."""
    coders = sorted({c for unit in data.values() for c in unit}, key=str)
    matrix = np.full((len(coders), len(data)), np.nan)
    for column, unit in enumerate(data.values()):
        for row, coder in enumerate(coders):
            value = unit.get(coder)
            if value is not None:
                matrix[row, column] = value
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


# ---------------------------------------------------------------- real data loaders


def squality_reviews() -> list[dict[str, Any]]:
    reviews = []
    with SQUALITY.open(encoding="utf-8") as handle:
        for line in handle:
            passage = json.loads(line)
            for question, systems in passage["questions"].items():
                for system, entry in systems.items():
                    for review in entry["reviews"]:
                        reviews.append(
                            {"item": (passage["passage-id"], question), "system": system, **review}
                        )
    return reviews


def tulu_graded_preferences() -> dict[int, dict[str, int]]:
    """``instance -> {evaluator -> -2..2}``, positive when the alphabetically first model wins.

    A/B order is randomised per annotation, so each judgement is turned to one
    orientation per model pair before units can be compared. An evaluator who
    judged an instance twice keeps the first judgement.
    """
    grade = {
        "a-is-better": 2,
        "a-is-slightly-better": 1,
        "tie": 0,
        "b-is-slightly-better": -1,
        "b-is-better": -2,
    }
    data: dict[int, dict[str, int]] = {}
    with TULU.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            value = grade[row["preference"]]
            if row["model_a"] > row["model_b"]:
                value = -value
            data.setdefault(row["instance_index"], {}).setdefault(row["evaluator"], value)
    return data


# ---------------------------------------------------------------- Krippendorff's alpha


@needs_squality
@pytest.mark.parametrize("aspect", ASPECTS)
def test_interval_alpha_matches_the_reference_on_squality_ratings(aspect: str) -> None:
    data = reliability_data_from_triples(
        ((r["item"], r["system"]), r["worker_id"], r[f"{aspect}-rating"])
        for r in squality_reviews()
    )
    assert len(data) == 300

    ours = krippendorff_alpha(data, level="interval")

    assert ours == pytest.approx(reference_alpha(data, "interval"), abs=1e-9)
    assert -1.0 < ours < 1.0


@needs_tulu
def test_alpha_matches_the_reference_on_tulu_graded_preferences() -> None:
    graded = tulu_graded_preferences()
    three_way = {
        unit: {c: int(np.sign(v)) for c, v in coders.items()} for unit, coders in graded.items()
    }
    assert sum(len(coders) >= 2 for coders in graded.values()) > 100

    assert krippendorff_alpha(three_way, level="nominal") == pytest.approx(
        reference_alpha(three_way, "nominal"), abs=1e-9
    )
    for level in ("ordinal", "interval"):
        assert krippendorff_alpha(graded, level=level) == pytest.approx(
            reference_alpha(graded, level), abs=1e-9
        )


@needs_tulu
def test_nominal_alpha_accepts_string_labels() -> None:
    graded = tulu_graded_preferences()
    names = {1: "A", 0: "tie", -1: "B"}
    as_numbers = {
        u: {c: int(np.sign(v)) for c, v in coders.items()} for u, coders in graded.items()
    }
    as_labels = {u: {c: names[v] for c, v in coders.items()} for u, coders in as_numbers.items()}

    assert krippendorff_alpha(as_labels, level="nominal") == pytest.approx(
        krippendorff_alpha(as_numbers, level="nominal"), abs=1e-12
    )


@needs_squality
@pytest.mark.parametrize("aspect", ASPECTS)
def test_alpha_on_pairwise_projections_of_squality_rankings_matches_the_reference(
    aspect: str,
) -> None:
    rankings: dict[Hashable, dict[Hashable, dict[Hashable, float]]] = {}
    for review in squality_reviews():
        by_coder = rankings.setdefault(review["item"], {})
        by_coder.setdefault(review["worker_id"], {})[review["system"]] = review[f"{aspect}-rank"]

    pairs = rankings_to_pairwise(rankings)

    assert len(pairs) == 300  # 100 questions x C(3, 2) system pairs
    for level in ("nominal", "ordinal"):
        assert krippendorff_alpha(pairs, level=level) == pytest.approx(
            reference_alpha(pairs, level), abs=1e-9
        )


def test_alpha_matches_the_reference_on_100k_random_values_quickly() -> None:
    rng = np.random.default_rng(7)
    coders, units = 5, 25_000
    truth = rng.integers(0, 7, units)
    matrix = np.where(rng.random((coders, units)) < 0.6, truth, rng.integers(0, 7, (coders, units)))
    matrix = matrix.astype(np.float64)
    matrix[rng.random((coders, units)) < 0.2] = np.nan
    data = {u: {c: matrix[c, u] for c in range(coders)} for u in range(units)}

    for level in ("nominal", "ordinal", "interval"):
        started = time.perf_counter()
        ours = krippendorff_alpha(data, level=level)
        elapsed = time.perf_counter() - started
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
        assert ours == pytest.approx(expected, abs=1e-9)
        assert elapsed < 1.0


def test_alpha_follows_value_order_for_ordinal_labels() -> None:
    data = {
        "u1": {"x": "low", "y": "mid"},
        "u2": {"x": "high", "y": "high"},
        "u3": {"x": "mid", "y": "low"},
        "u4": {"x": "high", "y": "mid"},
    }
    numeric = {
        u: {c: {"low": 0, "mid": 1, "high": 2}[v] for c, v in cs.items()} for u, cs in data.items()
    }

    ours = krippendorff_alpha(data, level="ordinal", value_order=["low", "mid", "high"])

    assert ours == pytest.approx(reference_alpha(numeric, "ordinal"), abs=1e-12)
    with pytest.raises(ValueError, match="value_order"):
        krippendorff_alpha(data, level="ordinal", value_order=["low", "mid"])


def test_alpha_is_nan_when_undefined_and_ignores_missing_values() -> None:
    one_coder = {"u1": {"x": 1}, "u2": {"x": 2}}
    all_identical = {"u1": {"x": 1, "y": 1}, "u2": {"x": 1, "y": 1, "z": None}}
    perfect = {"u1": {"x": 1, "y": 1}, "u2": {"x": 2, "y": 2, "z": float("nan")}}

    for level in ("nominal", "ordinal", "interval"):
        assert math.isnan(krippendorff_alpha({}, level=level))
        assert math.isnan(krippendorff_alpha(one_coder, level=level))
        assert math.isnan(krippendorff_alpha(all_identical, level=level))
        assert krippendorff_alpha(perfect, level=level) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(perfect, level="ratio")  # type: ignore[arg-type]


# ---------------------------------------------------------------- rankings to pairs


def test_rankings_project_onto_canonically_ordered_pairs_with_ties() -> None:
    rankings = {
        "item": {
            "ann1": {"b": 1, "a": 2, "c": 2},
            "ann2": {"a": 1, "c": 3},  # did not rank b
        }
    }

    pairs = rankings_to_pairwise(rankings)

    assert pairs == {
        ("item", "a", "b"): {"ann1": PAIR_SECOND_BETTER},
        ("item", "a", "c"): {"ann1": PAIR_TIE, "ann2": PAIR_FIRST_BETTER},
        ("item", "b", "c"): {"ann1": PAIR_FIRST_BETTER},
    }


# ---------------------------------------------------------------- kappas


def test_cohen_kappa_matches_sklearn_plain_and_weighted() -> None:
    metrics = pytest.importorskip(
        "sklearn.metrics", reason="sklearn is the reference for Cohen's kappa"
    )
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 500)
    first = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500)).tolist()
    second = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500)).tolist()

    for weights in (None, "linear", "quadratic"):
        assert cohen_kappa(first, second, weights=weights) == pytest.approx(
            metrics.cohen_kappa_score(first, second, weights=weights), abs=1e-12
        )


@needs_tulu
def test_cohen_kappa_matches_sklearn_on_the_two_most_overlapping_tulu_annotators() -> None:
    metrics = pytest.importorskip(
        "sklearn.metrics", reason="sklearn is the reference for Cohen's kappa"
    )
    graded = tulu_graded_preferences()
    overlap: dict[tuple[str, str], list[int]] = {}
    for unit, coders in graded.items():
        names = sorted(coders)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                overlap.setdefault((first, second), []).append(unit)
    (first, second), units = max(overlap.items(), key=lambda kv: len(kv[1]))
    labels_a = [int(np.sign(graded[u][first])) for u in units]
    labels_b = [int(np.sign(graded[u][second])) for u in units]

    assert len(units) >= 10
    assert cohen_kappa(labels_a, labels_b) == pytest.approx(
        metrics.cohen_kappa_score(labels_a, labels_b), abs=1e-12
    )


def test_cohen_kappa_drops_missing_pairs_and_is_nan_when_undefined() -> None:
    assert cohen_kappa(["a", None, "b"], ["a", "b", "b"]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    assert math.isnan(cohen_kappa([None], ["a"]))
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


# Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_reproduces_the_textbook_example() -> None:
    assert fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_counts_builds_the_count_matrix_from_labels() -> None:
    ratings = {
        unit: [category for category, count in enumerate(row) for _ in range(count)]
        for unit, row in enumerate(FLEISS_WIKIPEDIA)
    }

    counts, categories = fleiss_counts(ratings, categories=range(5))

    assert categories == [0, 1, 2, 3, 4]
    assert counts.tolist() == FLEISS_WIKIPEDIA
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_degenerate_inputs() -> None:
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only
    assert math.isnan(fleiss_kappa([[1, 0], [0, 1]]))  # one rating per unit
    assert math.isnan(fleiss_kappa(np.zeros((0, 3))))
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 1], [1, 1]])


# ---------------------------------------------------------------- per annotator


def test_majority_agreement_compares_each_annotator_with_the_others_and_skips_ties() -> None:
    data = {
        "u1": {"ann": "A", "bob": "A", "cat": "A"},  # everyone agrees
        "u2": {"ann": "B", "bob": "A", "cat": "A"},  # ann against a clear majority
        "u3": {"ann": "A", "bob": "A", "cat": "B"},  # for ann and bob the others tie
        "u4": {"ann": "A"},  # nobody else -> excluded
        "u5": {"dan": None, "ann": "A"},
    }

    scores = annotator_majority_agreement(data)

    assert scores["ann"] == AgreementScore(0.5, 2)
    assert scores["bob"] == AgreementScore(1.0, 1)  # u2 and u3 tie among the others
    assert scores["cat"] == AgreementScore(0.5, 2)  # u2 ties; u3 has an A majority
    assert "dan" not in scores


def test_majority_agreement_of_a_lone_annotator_is_nan_over_zero_units() -> None:
    scores = annotator_majority_agreement({"u1": {"ann": "A"}})

    assert math.isnan(scores["ann"].value)
    assert scores["ann"].n_units == 0


@needs_tulu
def test_majority_agreement_runs_on_real_tulu_labels() -> None:
    graded = tulu_graded_preferences()
    three_way = {
        unit: {c: int(np.sign(v)) for c, v in coders.items()} for unit, coders in graded.items()
    }

    scores = annotator_majority_agreement(three_way)

    assert len(scores) == 16
    counted = [s for s in scores.values() if s.n_units]
    assert counted
    assert all(0.0 <= s.value <= 1.0 for s in counted)


def test_gold_accuracy_counts_only_units_with_gold_and_an_answer() -> None:
    gold = {"g1": "A", "g2": "B", "g3": "A"}
    answers = {"g1": "A", "g2": "A", "x": "B", "g3": None}

    assert gold_accuracy(answers, gold) == AgreementScore(0.5, 2)
    assert gold_accuracy({}, gold).n_units == 0
    by_annotator = gold_accuracy_by_annotator(
        {"g1": {"ann": "A", "bob": "B"}, "g2": {"ann": "B"}}, gold
    )
    assert by_annotator == {"ann": AgreementScore(1.0, 2), "bob": AgreementScore(0.0, 1)}


def test_median_ignores_missing_values() -> None:
    assert median([3.0, None, 1.0, float("nan"), 2.0]) == 2.0
    assert median([1.0, 2.0]) == 1.5
    assert math.isnan(median([]))
    assert math.isnan(median([None]))

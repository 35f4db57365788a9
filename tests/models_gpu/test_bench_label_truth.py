"""The label-truth benchmark's simulation at a tiny scale: the functions the bench prints from."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_label_truth.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_label_truth", BENCH)
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def crowd(bench):
    return bench.simulate_crowd(bench.CrowdConfig(n_items=1500, n_annotators=30, seed=3))


def test_the_crowd_has_its_spammers_and_distinct_voters_per_item(bench, crowd):
    assert crowd.spammer.sum() == 6
    assert np.allclose(crowd.accuracy[crowd.spammer], 1 / 3)
    assert all(len(set(row)) == row.size for row in crowd.voters)
    # Non-spammers answer the truth about as often as their accuracy says.
    good = ~crowd.spammer[crowd.voters]
    right = crowd.votes == crowd.truth[:, None]
    assert abs(right[good].mean() - crowd.accuracy[crowd.voters][good].mean()) < 0.03


def test_adaptive_overlap_at_three_quarters_keeps_fixed_fives_majority_labels(bench, crowd):
    # It stops only once the votes still to come could not overturn the majority.
    taken, rounds = bench.collect_adaptive(
        crowd, min_votes=3, max_votes=5, agreement_threshold=0.75
    )
    assert rounds == 2 and taken.min() >= 3 and taken.max() == 5 and taken.mean() < 4.5
    adaptive = bench.vote_counts(crowd, taken).argmax(axis=1)
    full = bench.vote_counts(crowd, np.full(taken.size, 5))
    clear = np.sort(full, axis=1)[:, -1] > np.sort(full, axis=1)[:, -2]
    assert (adaptive[clear] == full.argmax(axis=1)[clear]).all()


def test_reliability_weighting_beats_the_majority_and_confidence_buys_accuracy(bench, crowd):
    fixed = bench.evaluate(crowd, "fixed 3", np.full(crowd.truth.size, 3), 0, seed=0)
    assert fixed.accuracy_reliability > fixed.accuracy_majority + 0.02
    plain, _ = bench.collect_adaptive(crowd, min_votes=3, max_votes=5, agreement_threshold=0.6)
    asked, _ = bench.collect_adaptive(
        crowd, min_votes=3, max_votes=5, agreement_threshold=0.6, confidence_threshold=0.9
    )
    assert asked.sum() > plain.sum()
    plain_outcome = bench.evaluate(crowd, "plain", plain, 0, seed=0)
    asked_outcome = bench.evaluate(crowd, "asked", asked, 0, seed=0)
    assert asked_outcome.accuracy_reliability > plain_outcome.accuracy_reliability

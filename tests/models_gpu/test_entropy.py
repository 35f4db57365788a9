from __future__ import annotations

import math

import numpy as np
import pytest

from models_gpu import knn_distances, knn_entropy


def test_the_estimate_matches_the_entropy_of_a_gaussian() -> None:
    rng = np.random.default_rng(0)
    d, sigma = 3, 2.0
    sample = rng.normal(scale=sigma, size=(4000, d))
    closed_form = 0.5 * d * math.log(2 * math.pi * math.e * sigma**2)
    assert knn_entropy(sample, k=5) == pytest.approx(closed_form, rel=0.05)


def test_exact_distances_match_brute_force_and_skip_self() -> None:
    points = np.random.default_rng(1).standard_normal((200, 4))
    brute = np.sort(np.linalg.norm(points[:, None] - points[None], axis=-1), axis=1)[:, 1:4]
    np.testing.assert_allclose(knn_distances(points, 3, method="exact"), brute, atol=1e-4)


def test_the_approximate_index_agrees_on_clustered_data() -> None:
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((20, 16)) * 5
    points = (centres[rng.integers(0, 20, 3000)] + rng.standard_normal((3000, 16))).astype(
        np.float32
    )
    exact = knn_distances(points, 5, method="exact")
    approx = knn_distances(points, 5, method="approx")
    assert approx.shape == exact.shape
    assert np.all(approx >= exact - 1e-3)  # an approximate neighbour is never nearer
    assert np.median(approx[:, -1] / exact[:, -1]) < 1.05


def test_duplicates_lower_the_entropy_without_breaking_it() -> None:
    points = np.random.default_rng(3).standard_normal((500, 2))
    with_duplicates = np.vstack([points[:250], points[:250]])
    assert knn_distances(with_duplicates, 1)[:, 0].min() == 0.0
    entropy = knn_entropy(with_duplicates, k=1)
    assert np.isfinite(entropy)
    assert entropy < knn_entropy(points, k=1)

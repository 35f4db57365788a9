"""Near-duplicate clusters of embeddings, for folds that keep a text and its twin together.

Out-of-fold scoring is honest only if no held-out pair has a near copy in the training
folds: a prompt asked twice with different punctuation, or one conversation imported
under two ids, would otherwise be scored by a model that memorised its twin, and the
held-out accuracy (and every score built on it) comes out too good.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Rows per block of the similarity matrix: 2048 x n float32 stays small for n in the millions.
BLOCK_ROWS = 2048


def near_duplicate_groups(
    embeddings: np.ndarray,
    *,
    threshold: float,
    groups: Sequence[object] | np.ndarray | None = None,
    block_rows: int = BLOCK_ROWS,
) -> np.ndarray:
    """A cluster id per row: rows linked by cosine ≥ ``threshold``, joined transitively.

    Two rows are in one cluster when a chain of rows connects them in which each
    neighbour pair has cosine similarity at least ``threshold`` (connected components
    of the similarity graph), or when they share a label in ``groups`` (e.g. the exact
    prompt text), so the result is never finer than ``groups``. Ids are ``0..k-1`` in
    order of first appearance. The similarity matrix is computed ``block_rows`` rows at
    a time (time O(n²·d), memory O(block_rows·n)).
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    n = len(vectors)
    if groups is not None and len(groups) != n:
        raise ValueError("groups must have one label per row")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        similar = unit[start:stop] @ unit[start:].T >= threshold
        # Upper triangle only: each link once, no self-links.
        similar[:, : stop - start] &= np.triu(np.ones((stop - start, stop - start), bool), 1)
        i, j = np.nonzero(similar)
        rows.append(i + start)
        cols.append(j + start)
    if groups is not None:
        _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        # Link each row to the first row of its group: a star per group joins it.
        first = np.full(int(codes.max()) + 1, n, dtype=np.int64)
        np.minimum.at(first, codes, np.arange(n))
        rows.append(np.arange(n))
        cols.append(first[codes])
    i, j = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so the ids do not depend on scipy's traversal order.
    _, first_seen, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first_seen), dtype=np.int64)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(len(first_seen))
    return rank[inverse]


def fold_groups(
    embeddings: np.ndarray,
    groups: Sequence[object] | np.ndarray,
    *,
    threshold: float,
    folds: int,
) -> np.ndarray:
    """The groups out-of-fold folds keep together: ``groups`` joined with near duplicates.

    Near-duplicate clusters (:func:`near_duplicate_groups`) are used unless they are
    not about duplicates at all: when joining near duplicates makes one cluster larger
    than both a fold's share of the rows and the largest exact group (an encoder that
    maps every text to nearly the same vector chains them all together), the exact
    ``groups`` alone are returned, as codes.
    """
    _, exact = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    exact = exact.astype(np.int64)
    clusters = near_duplicate_groups(embeddings, threshold=threshold, groups=groups)
    if not len(clusters):
        return clusters
    largest = np.bincount(clusters).max()
    if largest > max(len(clusters) / folds, np.bincount(exact).max()):
        return exact
    return clusters

"""k-nearest-neighbour distances and the Kozachenko–Leonenko entropy estimator."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import digamma

from models_gpu.embeddings import resolve_device

# Above this many points the O(N²) exact search is swapped for faiss IVF when available.
APPROXIMATE_ABOVE = 20_000
# Bytes of float32 distance matrix per block in the exact search.
_BLOCK_BYTES = 256 << 20


def pairwise_nearest(
    queries: np.ndarray,
    points: np.ndarray,
    k: int,
    *,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest ``points`` of each query (Euclidean), blockwise in torch.

    Returns ``(distances, indices)``, both ``(len(queries), k)``, nearest first.
    """
    dev = resolve_device(device)
    k = min(k, len(points))
    data = torch.as_tensor(np.ascontiguousarray(points, dtype=np.float32), device=dev)
    data_sq = (data * data).sum(1)
    block = max(1, _BLOCK_BYTES // (4 * max(len(points), 1)))
    dist_out = np.empty((len(queries), k), dtype=np.float32)
    idx_out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        q = torch.as_tensor(
            np.ascontiguousarray(queries[start : start + block], dtype=np.float32), device=dev
        )
        # ‖q−x‖² = ‖q‖² + ‖x‖² − 2q·x: one matmul instead of an (n, m, d) broadcast.
        sq = (q * q).sum(1, keepdim=True) + data_sq - 2.0 * (q @ data.T)
        values, indices = torch.topk(sq, k, dim=1, largest=False)
        dist_out[start : start + len(q)] = values.clamp_min(0).sqrt().cpu().numpy()
        idx_out[start : start + len(q)] = indices.cpu().numpy()
    return dist_out, idx_out


def _faiss_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        import faiss
    except ImportError:
        return None
    data = np.ascontiguousarray(X, dtype=np.float32)
    # IVF over ~4√n k-means cells, probing 8: embeddings are strongly clustered, so
    # recall stays high while each query scans ~2% of the points. (HNSW was slower to
    # build than an exact search on 2 CPU cores at 50k × 384.)
    n_cells = max(1, int(4 * math.sqrt(len(data))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(data.shape[1]), data.shape[1], n_cells)
    index.cp.seed = 0
    index.train(data)
    index.add(data)
    index.nprobe = 8
    sq, idx = index.search(data, k)
    distances, indices = np.sqrt(np.maximum(sq, 0)), idx.astype(np.int64)
    short = (indices < 0).any(1)  # probed cells held fewer than k points
    if short.any():
        distances[short], indices[short] = pairwise_nearest(data[short], data, k)
    return distances, indices


def knn_distances(X: np.ndarray, k: int, *, method: str = "auto") -> np.ndarray:
    """Distance from each row of ``X`` to its 1st…k-th nearest *other* row, ``(n, k)``.

    ``method``: ``"exact"`` (blockwise torch, CUDA when present), ``"approx"`` (faiss
    IVF if installed, else exact) or ``"auto"`` (approx above ``APPROXIMATE_ABOVE``
    points). Duplicated rows give distance 0, which is correct: callers decide what a
    zero means to them (see :func:`knn_entropy`).
    """
    n = len(X)
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n, got k={k}, n={n}")
    result = None
    if method == "approx" or (method == "auto" and n > APPROXIMATE_ABOVE):
        result = _faiss_knn(X, k + 1)
    if result is None:
        result = pairwise_nearest(X, X, k + 1)
    distances, indices = result
    # Drop each point's own hit. With duplicates the self hit may not be first, and an
    # approximate index may miss it; then the farthest of the k + 1 is dropped instead.
    is_self = indices == np.arange(n)[:, None]
    is_self[~is_self.any(1), -1] = True
    is_self[np.cumsum(is_self, 1) > 1] = False
    return distances[~is_self].reshape(n, k)


def log_unit_ball_volume(d: int) -> float:
    """``log V_d`` with ``V_d = π^{d/2} / Γ(d/2 + 1)``."""
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def knn_entropy(
    X: np.ndarray,
    k: int = 5,
    *,
    method: str = "auto",
    distances: np.ndarray | None = None,
) -> float:
    """Kozachenko–Leonenko differential entropy estimate, in nats.

    ``Ĥ = ψ(N) − ψ(k) + log V_d + (d / N) · Σ_i log ρ_k(i)``

    with ``N`` points in ``d`` dimensions, ψ the digamma function, ``V_d`` the volume
    of the unit d-ball and ``ρ_k(i)`` the Euclidean distance from point i to its k-th
    nearest other point. Duplicated points have ``ρ_k = 0`` and would send the estimate
    to −∞; they are floored at 10⁻³ × the median positive ``ρ_k``, so duplicates lower
    the entropy a lot but finitely and sets of equal size stay comparable. Pass
    precomputed ``knn_distances(X, k)`` as ``distances`` to skip the search.
    """
    n, d = X.shape
    rho = (distances if distances is not None else knn_distances(X, k, method=method))[:, k - 1]
    rho = floor_distances(rho)
    return float(digamma(n) - digamma(k) + log_unit_ball_volume(d) + d * np.mean(np.log(rho)))


def distance_floor(rho: np.ndarray, relative: float = 1e-3) -> float:
    """``relative`` × the median positive distance (1e-12 if none): the stand-in for 0."""
    positive = np.asarray(rho)[np.asarray(rho) > 0]
    return max(relative * float(np.median(positive)) if len(positive) else 0.0, 1e-12)


def floor_distances(rho: np.ndarray, relative: float = 1e-3) -> np.ndarray:
    """Raise distances (duplicates' zeros in particular) to :func:`distance_floor`."""
    return np.maximum(np.asarray(rho, dtype=np.float64), distance_floor(rho, relative))

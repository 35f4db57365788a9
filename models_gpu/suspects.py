"""Suspect labels: pairs whose out-of-fold reward model confidently disagrees.

In the spirit of CRM / LCPO label-noise filtering: a reward model that never saw a pair
(nor its prompt) still prefers the *rejected* response with high probability, so the
pair is worth a second human look (or down-weighting), most confident first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar


@dataclass
class SuspectResult:
    """Ranked suspects.

    Attributes:
        indices: Flagged pair indices, most confident contradiction first.
        confidence: For every pair, the probability the label is wrong, ``σ(−margin / T)``.
        temperature: The ``T`` used (1.0 unless calibrated).
    """

    indices: np.ndarray
    confidence: np.ndarray
    temperature: float


def calibrate_temperature(margins: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature T minimising the weighted log loss of ``σ(margin / T)`` on the labels.

    Out-of-fold margins are held-out predictions, so fitting one scalar on them is
    cheap and barely leaks; it makes thresholds mean probabilities again when the
    head is over- or under-confident.
    """
    m = np.asarray(margins, dtype=np.float64)
    w = np.ones_like(m) if weights is None else np.asarray(weights, dtype=np.float64)

    def log_loss(log_t: float) -> float:
        return float(np.sum(w * np.logaddexp(0.0, -m / np.exp(log_t))))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-5.0, 5.0), method="bounded").x))


def flag_suspects(
    margins: np.ndarray,
    *,
    threshold: float = 0.7,
    weights: np.ndarray | None = None,
    max_flagged: int | None = None,
    calibrate: bool = False,
) -> SuspectResult:
    """Flag pairs whose label the out-of-fold model contradicts with confidence ≥ ``threshold``.

    ``margins`` are ``r(chosen) − r(rejected)`` from :func:`models_gpu.reward.out_of_fold_margins`;
    in-sample margins would hide noise the model memorised. Pairs with weight 0 (ties)
    are never flagged. ``max_flagged`` caps the list (a review budget).
    """
    m = np.asarray(margins, dtype=np.float64)
    temperature = calibrate_temperature(m, weights) if calibrate else 1.0
    confidence = 1.0 / (1.0 + np.exp(m / temperature))
    eligible = confidence >= threshold
    if weights is not None:
        eligible &= np.asarray(weights) > 0
    flagged = np.flatnonzero(eligible)
    flagged = flagged[np.argsort(-confidence[flagged], kind="stable")]
    if max_flagged is not None:
        flagged = flagged[:max_flagged]
    return SuspectResult(indices=flagged, confidence=confidence, temperature=temperature)

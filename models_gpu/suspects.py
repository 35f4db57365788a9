"""Suspect labels: confident learning on out-of-fold reward margins.

A pair's label is suspect when a reward model that never saw the pair (nor a near copy
of its prompt) prefers the *rejected* response. A fixed probability threshold does not
survive noise: the noisier the labels, the less confident a model trained on them, so
the noisiest data would be flagged least. Confident learning (Northcutt, Jiang and
Chuang, 2021) avoids that by comparing each pair with the average confidence of its
own class instead of a constant:

1. ``p`` = the (optionally temperature-calibrated) held-out probability that a pair's
   label is right.
2. Per-class thresholds ``t_c`` = the mean of ``p`` over pairs labelled ``c``. A pair
   has no class of its own (swap the responses and the label swaps too), so unless a
   class per pair is given (e.g. the position the chosen response was shown in) every
   pair is seen in both orientations and the two thresholds coincide.
3. The confident joint counts pairs confidently of their label (``p ≥ t_c``) and
   pairs confidently of the other one (``1 − p ≥ t_other``); calibrated to the class
   sizes it estimates the number of wrong labels.
4. Pairs are ranked by their probability of carrying a wrong label and the top
   ``flag_share`` of the estimated count is flagged (prune by noise rate), capped by
   ``max_flagged`` and never below ``threshold``. Ties (weight 0) are never flagged,
   and pairs of equal probability keep their input order.

The per-pair ``confidence`` is that probability moved to the joint's noise rate (the
prior shift of Saerens, Latinne and Decaestecker, 2002): the calibrated probabilities
imply one share of wrong labels, the confident joint estimates another, and each
pair's odds are scaled by the ratio. The expected precision of the flagged set is the
mean confidence over it: the share of flagged labels expected to be truly wrong.
:func:`find_suspects` adds the second, cleaned pass (``refit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize_scalar

from models_gpu.config import RewardConfig, SuspectConfig

if TYPE_CHECKING:
    from models_gpu.reward import OutOfFoldCache, OutOfFoldResult

# Keeps odds finite when the joint says no (or every) label is wrong.
_EPS = 1e-6


@dataclass
class NoiseEstimate:
    """What confident learning estimated from held-out probabilities.

    Attributes:
        thresholds: Per-class thresholds ``t_c`` (the mean self-confidence of class c).
        confident_joint: Counts ``[[right, wrong], ...]`` per given class: pairs whose
            probability of the given (first column) or the other label (second) reached
            that label's threshold.
        noise_rate: Estimated share of eligible pairs whose label is wrong.
        noise_count: ``noise_rate`` times the number of eligible pairs, rounded.
        eligible: Pairs considered (weight > 0 and a finite margin).
    """

    thresholds: list[float]
    confident_joint: list[list[int]]
    noise_rate: float
    noise_count: int
    eligible: int


@dataclass
class SuspectResult:
    """Ranked suspects and the noise estimate behind them.

    Attributes:
        indices: Flagged pair indices, most confident first.
        confidence: For every pair, the estimated probability that its label is wrong
            (0 for pairs never considered: ties and non-finite margins).
        temperature: The ``T`` used (1.0 unless calibrated).
        noise: The confident-learning estimate.
        expected_precision: Mean ``confidence`` over the flagged pairs (None if none).
        margins: The held-out margins the ranking came from (the refit pass's when
            :func:`find_suspects` refitted).
        refitted: Whether the ranking came from a second, cleaned pass.
        pruned: Pairs left out of the second pass's training (0 without a refit).
    """

    indices: np.ndarray
    confidence: np.ndarray
    temperature: float
    noise: NoiseEstimate
    expected_precision: float | None
    margins: np.ndarray = field(default_factory=lambda: np.zeros(0))
    refitted: bool = False
    pruned: int = 0

    @property
    def noise_rate(self) -> float:
        return self.noise.noise_rate

    def summary(self) -> dict[str, object]:
        """Plain numbers for a job result: counts, rates and the estimated joint."""
        return {
            "flagged": len(self.indices),
            "estimated_noise_rate": self.noise.noise_rate,
            "estimated_noise_count": self.noise.noise_count,
            "expected_precision": self.expected_precision,
            "eligible": self.noise.eligible,
            "class_thresholds": self.noise.thresholds,
            "confident_joint": self.noise.confident_joint,
            "temperature": self.temperature,
            "refitted": self.refitted,
            "pruned_for_refit": self.pruned,
        }


def calibrate_temperature(margins: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature T minimising the weighted log loss of ``σ(margin / T)`` on the labels.

    Out-of-fold margins are held-out predictions, so fitting one scalar on them is
    cheap and barely leaks; it makes the margins probabilities of the labels as given
    (noise included: on noisy labels T grows and the probabilities shrink towards 0.5).
    """
    m = np.asarray(margins, dtype=np.float64)
    w = np.ones_like(m) if weights is None else np.asarray(weights, dtype=np.float64)

    def log_loss(log_t: float) -> float:
        return float(np.sum(w * np.logaddexp(0.0, -m / np.exp(log_t))))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-5.0, 5.0), method="bounded").x))


def estimate_noise(
    prob_right: np.ndarray,
    *,
    eligible: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> NoiseEstimate:
    """Confident learning's joint of given and true labels for binary pair labels.

    ``prob_right[i]`` is the held-out probability that pair i's label is right;
    ``classes`` (0 or 1 per pair) its given class, or None to treat every pair in
    both orientations (one threshold for both classes). Pairs outside ``eligible``
    are ignored.
    """
    p = np.asarray(prob_right, dtype=np.float64)
    keep = np.ones(len(p), bool) if eligible is None else np.asarray(eligible, bool)
    keep = keep & np.isfinite(p)
    cls = np.zeros(len(p), np.int64) if classes is None else np.asarray(classes, np.int64)
    if np.any((cls != 0) & (cls != 1)):
        raise ValueError("classes must be 0 or 1")
    n = int(keep.sum())
    if n == 0:
        return NoiseEstimate([0.5, 0.5], [[0, 0], [0, 0]], 0.0, 0, 0)
    means = [
        float(p[keep & (cls == c)].mean()) if np.any(keep & (cls == c)) else None for c in (0, 1)
    ]
    # A class with no pairs borrows the other's threshold: the mirrored orientation of
    # every pair has the same self-confidence.
    thresholds = [m if m is not None else next(x for x in means if x is not None) for m in means]
    joint = np.zeros((2, 2), dtype=np.int64)
    noisy_pairs = 0.0
    for c in (0, 1):
        rows = keep & (cls == c)
        if not rows.any():
            continue
        right = p[rows] >= thresholds[c]
        wrong = 1.0 - p[rows] >= thresholds[1 - c]
        # Above both thresholds (possible when the model is worse than chance):
        # the larger probability decides, as in cleanlab.
        both = right & wrong
        right = np.where(both, p[rows] >= 0.5, right)
        wrong = np.where(both, p[rows] < 0.5, wrong)
        joint[c] = [int(right.sum()), int(wrong.sum())]
        counted = joint[c].sum()
        if counted:
            # Calibrate the row to the class size: unconfident pairs err in proportion.
            noisy_pairs += rows.sum() * joint[c, 1] / counted
    rate = float(noisy_pairs / n)
    return NoiseEstimate(
        thresholds=[float(t) for t in thresholds],
        confident_joint=joint.tolist(),
        noise_rate=rate,
        noise_count=int(np.floor(rate * n + 0.5)),
        eligible=n,
    )


def _prior_shift(prob_wrong: np.ndarray, *, implied: float, estimated: float) -> np.ndarray:
    """Move probabilities whose mean is ``implied`` to a share ``estimated`` (odds ratio)."""
    implied = min(max(implied, _EPS), 1 - _EPS)
    estimated = min(max(estimated, _EPS), 1 - _EPS)
    factor = (estimated / (1 - estimated)) / (implied / (1 - implied))
    q = np.clip(prob_wrong, _EPS, 1 - _EPS)
    odds = q / (1 - q) * factor
    return odds / (1 + odds)


def flag_suspects(
    margins: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    config: SuspectConfig | None = None,
    classes: np.ndarray | None = None,
) -> SuspectResult:
    """Flag pairs whose label the out-of-fold model contradicts, by confident learning.

    ``margins`` are ``r(chosen) − r(rejected)`` from :func:`models_gpu.out_of_fold_margins`
    (in-sample margins would hide noise the model memorised). Pairs with weight 0
    (ties) or a non-finite margin are never flagged and get confidence 0. See the
    module docstring for the rule; ``config`` defaults to :class:`SuspectConfig`.
    """
    config = config or SuspectConfig()
    m = np.asarray(margins, dtype=np.float64)
    eligible = np.isfinite(m)
    if weights is not None:
        eligible &= np.asarray(weights, dtype=np.float64) > 0
    temperature = 1.0
    if config.calibrate and eligible.sum() >= 2:
        temperature = calibrate_temperature(m[eligible])
    safe = np.where(eligible, m, 0.0)
    prob_right = 1.0 / (1.0 + np.exp(-safe / temperature))
    noise = estimate_noise(prob_right, eligible=eligible, classes=classes)
    confidence = np.zeros(len(m))
    flagged = np.zeros(0, dtype=np.int64)
    if noise.eligible:
        prob_wrong = 1.0 - prob_right[eligible]
        confidence[eligible] = _prior_shift(
            prob_wrong, implied=float(prob_wrong.mean()), estimated=noise.noise_rate
        )
        candidates = np.flatnonzero(eligible)
        # Stable sort: equal confidences keep their input order, so reruns agree.
        ranked = candidates[np.argsort(-confidence[candidates], kind="stable")]
        budget = int(np.floor(config.flag_share * noise.noise_count + 0.5))
        if config.max_flagged is not None:
            budget = min(budget, config.max_flagged)
        flagged = ranked[:budget]
        flagged = flagged[confidence[flagged] >= config.threshold]
    expected = float(confidence[flagged].mean()) if len(flagged) else None
    return SuspectResult(
        indices=flagged,
        confidence=confidence,
        temperature=temperature,
        noise=noise,
        expected_precision=expected,
        margins=m,
    )


def find_suspects(
    prompt_emb: np.ndarray,
    chosen_emb: np.ndarray,
    rejected_emb: np.ndarray,
    *,
    groups: Sequence[object] | np.ndarray,
    weights: np.ndarray | None = None,
    reward: RewardConfig,
    config: SuspectConfig | None = None,
    first_pass: OutOfFoldResult | None = None,
    cache: OutOfFoldCache | None = None,
    classes: np.ndarray | None = None,
) -> SuspectResult:
    """Held-out margins → :func:`flag_suspects`, with the cleaned second pass of ``refit``.

    ``first_pass`` reuses out-of-fold margins already computed with ``reward`` (as
    :func:`models_gpu.score_pairs` has them). With ``config.refit``, the pairs the first
    pass estimated wrong (the ``noise_count`` most confident) are given weight 0, new
    out-of-fold margins are trained without them (every pair is still scored, by a
    model that did not see it) and those are flagged.
    """
    from models_gpu.reward import out_of_fold_margins

    config = config or SuspectConfig()

    def margins_with(pair_weights: np.ndarray | None) -> np.ndarray:
        return out_of_fold_margins(
            prompt_emb,
            chosen_emb,
            rejected_emb,
            groups=groups,
            weights=pair_weights,
            config=reward,
            cache=cache,
        ).margins

    margins = first_pass.margins if first_pass is not None else margins_with(weights)
    result = flag_suspects(margins, weights=weights, config=config, classes=classes)
    if not config.refit or result.noise.noise_count == 0:
        return result
    base = np.ones(len(margins)) if weights is None else np.asarray(weights, dtype=np.float64)
    ranked = np.argsort(-result.confidence, kind="stable")
    pruned = ranked[: result.noise.noise_count]
    cleaned = base.copy()
    cleaned[pruned] = 0.0
    if (cleaned > 0).sum() < 2:
        return result
    second = flag_suspects(margins_with(cleaned), weights=weights, config=config, classes=classes)
    second.refitted = True
    second.pruned = len(pruned)
    return second

"""Logistic regressions with Wald intervals, AUC and the L1 probe tuned to a size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


@dataclass
class _Wald:
    coef: np.ndarray
    se: np.ndarray

    def p_values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.se > 0, self.coef / self.se, 0.0)
        return 2 * stats.norm.sf(np.abs(z))

    def interval(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        half = stats.norm.ppf(1 - alpha / 2) * self.se
        return self.coef - half, self.coef + half


def logit_wald(x: np.ndarray, y: np.ndarray, ridge: float, *, max_iter: int = 100) -> _Wald:
    """Newton–Raphson for ``P(y=1) = σ(xβ)`` with an L2 penalty ``ridge/2 ‖β‖²``.

    Standard errors from the inverse of the penalised Hessian (Wald). The tiny ridge keeps
    the Hessian invertible for an all-zero column (a feature never active) or separable
    data (one pair), where the estimate would run off to infinity.
    """
    n_cols = x.shape[1]
    beta = np.zeros(n_cols)
    penalty = ridge * np.eye(n_cols)
    hessian = penalty
    for _ in range(max_iter):
        prob = special.expit(x @ beta)
        weight = prob * (1 - prob)
        gradient = x.T @ (y - prob) - ridge * beta
        hessian = (x * weight[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        norm = np.abs(step).max()
        if norm > 5.0:  # damped: separable data would otherwise overshoot wildly
            step *= 5.0 / norm
        beta += step
        if norm < 1e-8:
            break
    prob = special.expit(x @ beta)
    hessian = (x * (prob * (1 - prob))[:, None]).T @ x + penalty
    cov = np.linalg.pinv(hessian)
    return _Wald(beta, np.sqrt(np.clip(np.diag(cov), 0.0, None)))


def auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Held-out AUC of an antisymmetric score, over ±rows so both classes are always present."""
    if len(score) == 0:
        return None
    return float(roc_auc_score(np.concatenate([label, 1 - label]), np.concatenate([score, -score])))


def rms(values: np.ndarray) -> np.ndarray:
    scale = np.sqrt((values**2).mean(axis=0)) if len(values) else np.ones(values.shape[1:])
    return np.where(scale > 0, scale, 1.0)


# Sklearn's L1 penalty cannot spare one column; scaling the length column up makes its
# weight (and so its penalty) this many times smaller, which leaves length in at any C.
_LENGTH_BOOST = 100.0


def l1_select(design: np.ndarray, label: np.ndarray, size: int, seed: int) -> list[int]:
    """Indices (into design[:, 1:], the features) an L1 probe keeps, tuned to keep ``size``.

    Column 0 is length, always in. Bisection on log C; where no C keeps exactly ``size``
    (ties along the path), the smallest C keeping more wins and its largest weights stay.
    """
    n_features = design.shape[1] - 1
    active = np.flatnonzero(np.abs(design[:, 1:]).sum(axis=0) > 0)
    if len(active) <= size:
        return active.tolist()
    boosted = design.copy()
    boosted[:, 0] *= _LENGTH_BOOST
    rows = np.concatenate([boosted, -boosted])
    labels = np.concatenate([label, 1 - label])

    def fit(log_c: float) -> np.ndarray:
        model = LogisticRegression(
            l1_ratio=1.0,
            C=float(np.exp(log_c)),
            solver="liblinear",
            fit_intercept=False,
            random_state=seed,
            max_iter=1000,
            tol=1e-6,
        )
        model.fit(rows, labels)
        return model.coef_[0, 1:]

    low, high = np.log(1e-4), np.log(1e3)
    best: np.ndarray | None = None
    for _ in range(30):
        middle = (low + high) / 2
        weights = fit(middle)
        count = int((weights != 0).sum())
        if count == size:
            return sorted(np.flatnonzero(weights).tolist())
        if count > size:
            best, high = weights, middle
        else:
            low = middle
    if best is None:
        best = fit(np.log(1e3))
    order = np.argsort(-np.abs(best), kind="stable")[:size]
    return sorted(int(i) for i in order if i < n_features)


# ---------------------------------------------------------------------------------------
# Descriptions

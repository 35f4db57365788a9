"""Inter-annotator agreement statistics on plain Python values.

No Django here: the curation selectors turn stored answers into *reliability
data*, a mapping ``unit -> {coder -> value}``, and everything below works on
that (or on plain label sequences), so the maths is testable alone and usable
from a notebook.

Conventions shared by every function in this module:

- A value that is ``None`` or a float NaN is *missing* and silently ignored.
- A statistic that is undefined for the data given (no unit with two values,
  only one category ever used, fewer than two raters) is ``nan``, never an
  exception and never a made-up 1.0: reporting "perfect reliability" for a
  question whose answers never vary would hide a broken guideline, and a
  dashboard can show ``nan`` as "not enough data".
- Per-annotator results are :class:`AgreementScore` named tuples
  ``(value, n_units)`` so callers can hide scores backed by too few units.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
from scipy import sparse

Level: TypeAlias = Literal["nominal", "ordinal", "interval"]
ReliabilityData: TypeAlias = Mapping[Hashable, Mapping[Hashable, Any]]

# Values of a ranking projected onto one response pair (see ``rankings_to_pairwise``).
# Integers rather than strings so the same projection feeds nominal alpha
# ("which one?") and ordinal/interval alpha alike.
PAIR_FIRST_BETTER = 1
PAIR_TIE = 0
PAIR_SECOND_BETTER = -1

__all__ = [
    "PAIR_FIRST_BETTER",
    "PAIR_SECOND_BETTER",
    "PAIR_TIE",
    "AgreementScore",
    "Level",
    "ReliabilityData",
    "annotator_majority_agreement",
    "cohen_kappa",
    "fleiss_counts",
    "fleiss_kappa",
    "gold_accuracy",
    "gold_accuracy_by_annotator",
    "krippendorff_alpha",
    "median",
    "rankings_to_pairwise",
    "reliability_data_from_triples",
]


class AgreementScore(NamedTuple):
    """A rate and the number of units it was computed on (``nan`` when ``n_units == 0``)."""

    value: float
    n_units: int


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reliability_data_from_triples(
    triples: Iterable[tuple[Hashable, Hashable, Any]],
) -> dict[Hashable, dict[Hashable, Any]]:
    """Build reliability data from ``(unit, coder, value)`` triples.

    A coder who answered the same unit twice keeps the *last* value: resubmissions
    replace earlier answers in Ballot, and alpha assumes one value per coder and unit.
    """
    data: dict[Hashable, dict[Hashable, Any]] = {}
    for unit, coder, value in triples:
        data.setdefault(unit, {})[coder] = value
    return data


# --------------------------------------------------------------------------- alpha


def _flatten_pairable(
    data: ReliabilityData,
) -> tuple[np.ndarray, list[Any]]:
    """Unit index and value of every non-missing value in a unit with at least two values.

    Units with a single value cannot be paired, so they carry no information about
    agreement and are dropped before the coincidence counts (as Krippendorff does).
    """
    unit_index: list[int] = []
    values: list[Any] = []
    unit_number = 0
    for coders in data.values():
        present = [v for v in coders.values() if not _is_missing(v)]
        if len(present) < 2:
            continue
        unit_index.extend([unit_number] * len(present))
        values.extend(present)
        unit_number += 1
    return np.asarray(unit_index, dtype=np.int64), values


def _nominal_alpha(unit_index: np.ndarray, value_codes: np.ndarray, n_values: int) -> float:
    # Only the diagonal of the coincidence matrix matters for the nominal metric:
    # sum_{c != k} o_ck = n - trace(o). That keeps this O(number of values).
    n = value_codes.size
    unit_sizes = np.bincount(unit_index)
    keys = unit_index * n_values + value_codes
    unique_keys, counts = np.unique(keys, return_counts=True)
    key_units = unique_keys // n_values
    trace = float(np.sum(counts * (counts - 1) / (unit_sizes[key_units] - 1)))
    value_totals = np.bincount(value_codes, minlength=n_values).astype(np.float64)
    expected = float(n) * n - float(np.sum(value_totals**2))
    if expected <= 0:
        return math.nan
    return 1.0 - (n - 1) * (n - trace) / expected


def _interval_alpha(unit_index: np.ndarray, numbers: np.ndarray) -> float:
    # For the interval metric the pair sums collapse to sums of squares:
    # sum_{i != j in u} (v_i - v_j)^2 = 2 m_u * sum_i (v_i - mean_u)^2.
    # Centring on the means keeps large values from cancelling catastrophically.
    n = numbers.size
    unit_sizes = np.bincount(unit_index).astype(np.float64)
    unit_means = np.bincount(unit_index, weights=numbers) / unit_sizes
    within = np.bincount(unit_index, weights=(numbers - unit_means[unit_index]) ** 2)
    observed = float(np.sum(2.0 * unit_sizes * within / (unit_sizes - 1.0)))
    expected = 2.0 * n * float(np.sum((numbers - numbers.mean()) ** 2))
    if expected <= 0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def _ordinal_alpha(unit_index: np.ndarray, value_codes: np.ndarray, n_values: int) -> float:
    # The ordinal metric depends on the marginal counts of every value between
    # two ranks, so it needs the full V x V coincidence matrix. It is built as a
    # sparse product (units x values counts), so memory is O(V^2 + values), not
    # O(units x V).
    n = value_codes.size
    unit_sizes = np.bincount(unit_index).astype(np.float64)
    n_units = unit_sizes.size
    counts = sparse.csr_matrix(
        (np.ones(n, dtype=np.float64), (unit_index, value_codes)), shape=(n_units, n_values)
    )
    counts.sum_duplicates()
    weights = sparse.diags(1.0 / (unit_sizes - 1.0))
    coincidences = np.asarray((counts.T @ weights @ counts).todense())
    coincidences -= np.diag(np.asarray((weights @ counts).sum(axis=0)).ravel())
    totals = coincidences.sum(axis=0)
    cumulative = np.concatenate([[0.0], np.cumsum(totals)])
    low = np.minimum.outer(np.arange(n_values), np.arange(n_values))
    high = np.maximum.outer(np.arange(n_values), np.arange(n_values))
    between = cumulative[high + 1] - cumulative[low]
    distance = (between - (totals[:, None] + totals[None, :]) / 2.0) ** 2
    np.fill_diagonal(distance, 0.0)
    observed = float(np.sum(coincidences * distance))
    expected = float(totals @ distance @ totals)
    if expected <= 0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def krippendorff_alpha(
    data: ReliabilityData,
    *,
    level: Level = "nominal",
    value_order: Sequence[Any] | None = None,
) -> float:
    """Krippendorff's alpha for reliability data ``unit -> {coder -> value}``.

    Implements the coincidence-matrix method (Krippendorff 2011, "Computing
    Krippendorff's alpha-reliability"): only units with two or more values are
    pairable; ``alpha = 1 - D_o / D_e``.

    - ``nominal``: values are any hashable labels.
    - ``ordinal``: values are ordered by ``value_order`` when given (every value
      must appear in it), otherwise by their natural sort order.
    - ``interval``: values are numbers.

    Runs in O(number of values) for nominal and interval, plus O(V^2) for ordinal
    with V distinct values, so 100k values take milliseconds.

    Returns ``nan`` when alpha is undefined: no unit has two values (one coder),
    or only one distinct value occurs among pairable values (no variation).
    """
    unit_index, values = _flatten_pairable(data)
    if unit_index.size == 0:
        return math.nan
    if level == "interval":
        numbers = np.asarray(values, dtype=np.float64)
        return _interval_alpha(unit_index, numbers)
    if level == "nominal":
        codes: dict[Any, int] = {}
        value_codes = np.fromiter(
            (codes.setdefault(v, len(codes)) for v in values), dtype=np.int64, count=len(values)
        )
        return _nominal_alpha(unit_index, value_codes, len(codes))
    if level == "ordinal":
        ordered = list(value_order) if value_order is not None else sorted(set(values))
        position = {v: i for i, v in enumerate(ordered)}
        unknown = {v for v in values if v not in position}
        if unknown:
            raise ValueError(f"values missing from value_order: {sorted(map(repr, unknown))}")
        value_codes = np.fromiter((position[v] for v in values), dtype=np.int64, count=len(values))
        return _ordinal_alpha(unit_index, value_codes, len(ordered))
    raise ValueError(f"unknown level of measurement: {level!r}")


# --------------------------------------------------------------------------- kappas


def cohen_kappa(
    labels_a: Sequence[Any],
    labels_b: Sequence[Any],
    *,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two coders' aligned label sequences.

    Positions where either label is missing are dropped. ``weights`` gives the
    weighted kappa; categories are then ordered by ``labels`` (or sorted), which
    matches ``sklearn.metrics.cohen_kappa_score``. Returns ``nan`` when there are
    no paired labels or chance agreement is already perfect (one category only).
    """
    if len(labels_a) != len(labels_b):
        raise ValueError("label sequences must have the same length")
    pairs = [
        (a, b)
        for a, b in zip(labels_a, labels_b, strict=True)
        if not (_is_missing(a) or _is_missing(b))
    ]
    if not pairs:
        return math.nan
    categories = list(labels) if labels is not None else sorted({x for pair in pairs for x in pair})
    position = {c: i for i, c in enumerate(categories)}
    pairs = [(a, b) for a, b in pairs if a in position and b in position]
    if not pairs:
        return math.nan
    k = len(categories)
    codes = np.asarray([(position[a], position[b]) for a, b in pairs], dtype=np.int64)
    observed = np.bincount(codes[:, 0] * k + codes[:, 1], minlength=k * k).reshape(k, k)
    observed = observed.astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    grid = np.arange(k)
    if weights is None:
        weight = 1.0 - np.eye(k)
    elif weights == "linear":
        weight = np.abs(grid[:, None] - grid[None, :]).astype(np.float64)
    elif weights == "quadratic":
        weight = ((grid[:, None] - grid[None, :]) ** 2).astype(np.float64)
    else:
        raise ValueError(f"unknown weights: {weights!r}")
    disagreement_by_chance = float(np.sum(weight * expected))
    if disagreement_by_chance <= 0:
        return math.nan
    return 1.0 - float(np.sum(weight * observed)) / disagreement_by_chance


def fleiss_counts(
    ratings: Mapping[Hashable, Iterable[Any]],
    *,
    categories: Sequence[Any] | None = None,
) -> tuple[np.ndarray, list[Any]]:
    """Turn ``unit -> labels`` into the ``units x categories`` count matrix Fleiss' kappa takes.

    Missing labels are dropped. Returns the matrix and the category order used.
    """
    per_unit = [Counter(v for v in labels if not _is_missing(v)) for labels in ratings.values()]
    if categories is None:
        categories = sorted({c for counter in per_unit for c in counter}, key=repr)
    order = list(categories)
    position = {c: i for i, c in enumerate(order)}
    matrix = np.zeros((len(per_unit), len(order)), dtype=np.int64)
    for row, counter in enumerate(per_unit):
        for label, count in counter.items():
            if label not in position:
                raise ValueError(f"label {label!r} is not among the categories")
            matrix[row, position[label]] = count
    return matrix, order


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from a ``units x categories`` matrix of rating counts.

    Every unit must have the same number of ratings (Fleiss 1971); raises
    ``ValueError`` otherwise, because silently mixing rater counts biases kappa.
    Returns ``nan`` with fewer than two ratings per unit, no units, or when every
    rating falls in one category (chance agreement is 1).
    """
    matrix = np.asarray(counts, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        return math.nan
    raters = matrix.sum(axis=1)
    if not np.all(raters == raters[0]):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every unit")
    n = float(raters[0])
    if n < 2:
        return math.nan
    per_unit_agreement = (np.sum(matrix**2, axis=1) - n) / (n * (n - 1))
    mean_agreement = float(per_unit_agreement.mean())
    shares = matrix.sum(axis=0) / (matrix.shape[0] * n)
    chance = float(np.sum(shares**2))
    if chance >= 1.0:
        return math.nan
    return (mean_agreement - chance) / (1.0 - chance)


# --------------------------------------------------------------------------- per annotator


def annotator_majority_agreement(data: ReliabilityData) -> dict[Hashable, AgreementScore]:
    """Each annotator's agreement with the majority of the *other* annotators.

    For every unit an annotator labelled, the other annotators' labels are
    counted; when one label has strictly the most votes, the unit counts and the
    annotator agrees if their label equals it. Units where the others tie for the
    top (or where nobody else answered) are excluded: there is no majority to be
    right or wrong against. Leaving the annotator out of their own majority keeps
    a prolific annotator from agreeing with themselves.

    Returns ``annotator -> AgreementScore(share agreeing, units counted)``;
    the share is ``nan`` when no unit counted.
    """
    agreed: Counter[Hashable] = Counter()
    counted: Counter[Hashable] = Counter()
    annotators: set[Hashable] = set()
    for coders in data.values():
        present = {c: v for c, v in coders.items() if not _is_missing(v)}
        annotators.update(present)
        if len(present) < 2:
            continue
        votes = Counter(present.values())
        for coder, label in present.items():
            votes[label] -= 1
            top = votes.most_common(2)
            has_majority = top[0][1] > 0 and (len(top) == 1 or top[0][1] > top[1][1])
            if has_majority:
                counted[coder] += 1
                agreed[coder] += top[0][0] == label
            votes[label] += 1
    return {
        coder: AgreementScore(
            agreed[coder] / counted[coder] if counted[coder] else math.nan, counted[coder]
        )
        for coder in annotators
    }


def gold_accuracy(answers: Mapping[Hashable, Any], gold: Mapping[Hashable, Any]) -> AgreementScore:
    """Share of gold units answered correctly, over units that have both an answer and a gold label."""
    scored = [
        answer == gold[unit]
        for unit, answer in answers.items()
        if unit in gold and not _is_missing(answer) and not _is_missing(gold[unit])
    ]
    if not scored:
        return AgreementScore(math.nan, 0)
    return AgreementScore(sum(scored) / len(scored), len(scored))


def gold_accuracy_by_annotator(
    data: ReliabilityData, gold: Mapping[Hashable, Any]
) -> dict[Hashable, AgreementScore]:
    """:func:`gold_accuracy` for every coder in reliability data ``unit -> {coder -> value}``."""
    by_coder: dict[Hashable, dict[Hashable, Any]] = {}
    for unit, coders in data.items():
        for coder, value in coders.items():
            by_coder.setdefault(coder, {})[unit] = value
    return {coder: gold_accuracy(answers, gold) for coder, answers in by_coder.items()}


# --------------------------------------------------------------------------- rankings


def _canonical_order(responses: Iterable[Hashable]) -> list[Hashable]:
    # Every coder must see a pair in the same orientation, or "first is better"
    # would mean different things in one unit. Mixed key types fall back to repr.
    items = list(responses)
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:
        return sorted(items, key=repr)


def rankings_to_pairwise(
    rankings: Mapping[Hashable, Mapping[Hashable, Mapping[Hashable, float]]],
) -> dict[tuple[Hashable, Hashable, Hashable], dict[Hashable, int]]:
    """Project rankings onto response pairs, giving reliability data for alpha.

    ``rankings`` is ``item -> {coder -> {response -> rank}}`` with lower ranks
    better and equal ranks meaning a tie. The result is
    ``(item, response_i, response_j) -> {coder -> value}`` with
    ``response_i < response_j`` in a canonical order shared by all coders and
    value :data:`PAIR_FIRST_BETTER` (1), :data:`PAIR_TIE` (0) or
    :data:`PAIR_SECOND_BETTER` (-1). A coder contributes to a pair only when
    they ranked both responses (missing ranks are skipped).
    """
    pairs: dict[tuple[Hashable, Hashable, Hashable], dict[Hashable, int]] = {}
    for item, by_coder in rankings.items():
        for coder, ranks in by_coder.items():
            ranked = {r: rank for r, rank in ranks.items() if not _is_missing(rank)}
            for first, second in combinations(_canonical_order(ranked), 2):
                difference = ranked[first] - ranked[second]
                if difference < 0:
                    value = PAIR_FIRST_BETTER
                elif difference > 0:
                    value = PAIR_SECOND_BETTER
                else:
                    value = PAIR_TIE
                pairs.setdefault((item, first, second), {})[coder] = value
    return pairs


# --------------------------------------------------------------------------- summaries


def median(values: Iterable[float | None]) -> float:
    """Median of the non-missing values; ``nan`` when there are none.

    Used for dashboard summaries (median per-annotator agreement, median time
    spent), where a few missing entries should not turn the summary into ``nan``.
    """
    present = np.asarray([v for v in values if not _is_missing(v)], dtype=np.float64)
    if present.size == 0:
        return math.nan
    return float(np.median(present))

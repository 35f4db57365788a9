"""Names proposed by a judge, kept only when their reading tracks the activation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from models_gpu.config import ExplainConfig
from models_gpu.explain.fit import oriented_texts, top_pairs
from models_gpu.explain.reports import Explanation, FeatureReport, PreferencePair, Propose, Rate


def name_features(
    explanation: Explanation,
    pairs: Sequence[PreferencePair],
    propose: Propose,
    rate: Rate,
    config: ExplainConfig | None = None,
    *,
    features: Sequence[int] | None = None,
) -> list[FeatureReport]:
    """Name features with a judge, keeping a name only if it passes the fidelity test.

    ``pairs`` are the ones given to :func:`explain_preferences`. For each feature the judge
    proposes a name from the top training examples (high side first); then it rates, on up
    to ``fidelity_pairs`` held-out pairs (half the most active, half drawn at random), how
    much more A than B has the named property. The name is kept when that rating's Pearson
    correlation with the activation is positive and significant at ``alpha``. Sets
    ``proposed_name``, ``fidelity_r``, ``fidelity_p`` and ``name`` in place on the chosen
    reports (all by default) and returns them.
    """
    config = config or ExplainConfig()
    chosen = [r for r in explanation.features if features is None or r.index in set(features)]
    rng = np.random.default_rng(config.seed)
    held = explanation.held_out
    for report in chosen:
        activation = explanation.activations[:, report.index]
        examples = [
            oriented_texts(pairs, int(explanation.pair_index[i]), bool(activation[i] < 0))
            for i in top_pairs(activation, config.top_examples, ~held)
        ]
        report.proposed_name = propose(examples) if examples else None
        report.name = report.fidelity_r = report.fidelity_p = None
        if not report.proposed_name:
            continue
        candidates = np.flatnonzero(held)
        half = config.fidelity_pairs // 2
        strongest = candidates[np.argsort(-np.abs(activation[candidates]), kind="stable")[:half]]
        others = np.setdiff1d(candidates, strongest)
        extra = rng.permutation(others)[: config.fidelity_pairs - len(strongest)]
        sample = np.concatenate([strongest, extra]).astype(int)
        if len(sample) < 3:
            continue
        ratings = []
        for i in sample:
            pair = pairs[int(explanation.pair_index[i])]
            ratings.append(float(rate(report.proposed_name, pair.text_a, pair.text_b)))
        if np.ptp(ratings) == 0 or np.ptp(activation[sample]) == 0:
            report.fidelity_r, report.fidelity_p = 0.0, 1.0
            continue
        r, p = stats.pearsonr(ratings, activation[sample])
        report.fidelity_r, report.fidelity_p = float(r), float(p)
        if r > 0 and p < config.alpha:
            report.name = report.proposed_name
    return chosen

"""Adaptive overlap: does an item need one more vote?

The same rule serves the queue (``annotation.services.overlap``, on every submit) and the
simulation in ``bench/bench_label_truth.py``, so the figures the benchmark prints are the
ones the product would reach.

An item is asked of ``min_votes`` annotators first. Once it has that many votes it closes
when they agree well enough; otherwise it asks for one more, until ``max_votes``. When a
posterior confidence is given (from a reliability fit such as
``models_gpu.reliability.fit_dawid_skene``), a confidence under ``confidence_threshold``
also asks for another vote.

Agreement of nominal labels (pairwise choices, where a tie is a label of its own) is the
share of votes on the most frequent label, the same figure as ``Item.agreement``: 3 of 3 is
1.0, 2 of 3 is 0.67, 3 of 4 is 0.75. Ordinal labels (ratings) agree by their spread: one
minus the mean absolute distance from the median over half the scale's span, so 4, 4, 5 on
a 1-5 scale agree more (0.83) than 1, 4, 5 (0.33), and a unanimous cell is 1.0.

Pure: no Django.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np


def vote_agreement(
    counts: Mapping[Hashable, int],
    *,
    ordinal: bool = False,
    scale: tuple[float, float] | None = None,
) -> float | None:
    """Agreement of one item's votes in [0, 1]; ``None`` without votes.

    ``counts`` maps a label (a response id, a tie marker, a rating value) to its number of
    votes. ``ordinal`` treats labels as numbers on ``scale`` (low, high), which it needs.
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    if not ordinal:
        return max(counts.values()) / total
    if scale is None:
        raise ValueError("Ordinal agreement needs the scale (low, high).")
    low, high = float(scale[0]), float(scale[1])
    if not high > low:
        raise ValueError("The scale's high end must lie above its low end.")
    values = np.repeat(
        np.array([float(v) for v in counts], dtype=float),
        np.array(list(counts.values()), dtype=int),
    )
    spread = float(np.mean(np.abs(values - np.median(values))))
    return max(0.0, 1.0 - spread / ((high - low) / 2.0))


def needs_another_vote(
    counts: Mapping[Hashable, int],
    *,
    min_votes: int,
    max_votes: int,
    agreement_threshold: float,
    ordinal: bool = False,
    scale: tuple[float, float] | None = None,
    confidence: float | None = None,
    confidence_threshold: float | None = None,
) -> bool:
    """Whether an item with these votes should be served to one more annotator.

    Under ``min_votes`` always; at ``max_votes`` or more never. In between, when the
    agreement (see the module docstring) is under ``agreement_threshold``, or when both
    ``confidence`` and ``confidence_threshold`` are given and the confidence is under it.
    """
    if not 1 <= min_votes <= max_votes:
        raise ValueError("Need 1 <= min_votes <= max_votes.")
    total = sum(counts.values())
    if total < min_votes:
        return True
    if total >= max_votes:
        return False
    agreement = vote_agreement(counts, ordinal=ordinal, scale=scale)
    if agreement is None or agreement < agreement_threshold:
        return True
    return (
        confidence is not None
        and confidence_threshold is not None
        and confidence < confidence_threshold
    )

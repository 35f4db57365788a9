"""Turning stored annotations into preference pairs, ranked lists and pointwise rows.

This is the one place that decides what a pair is: curation jobs and exports
both read pairs from here, so they can never disagree.

- pairwise answers give pairs directly; ties are kept apart (``tie=True``);
- a K-way ranking gives all C(K,2) pairs, each weighted 1/C(K,2) for its prompt;
- ratings give a pair when two responses' scores differ by at least a threshold
  (the gap, on a 0-1 normalised scale, is kept as the margin);
- a correction gives (corrected response, original response), with its segments.

Several annotators on one item are aggregated per pair: ``majority`` (the most
voted direction, its vote share kept as ``agreement``; a split vote is dropped),
``unanimous`` (only pairs everyone agrees on), ``all`` (every vote is its own
pair, weighted 1/votes), or ``reliability`` (the posterior label of the latest
reliability job, a Dawid–Skene fit, its probability kept as ``agreement``).

The package, one concern a module:

- :mod:`~curation.pairs.selection`: which annotations feed pairs (``Selection``,
  strict parsing of job and export params);
- :mod:`~curation.pairs.loading`: the only ORM code, reading items and their
  answers by id range into plain rows (:mod:`~curation.pairs.rows`);
- :mod:`~curation.pairs.aggregation`: votes and their aggregation, pure;
- :mod:`~curation.pairs.building`: records built from the loaded rows.
"""

from __future__ import annotations

from curation.pairs.aggregation import AGGREGATIONS, AggregatedPair, Vote, aggregate_votes
from curation.pairs.building import (
    iter_pointwise_rows,
    iter_preference_pairs,
    iter_ranked_lists,
    pair_key,
    pseudonymous_annotator,
)
from curation.pairs.loading import CHUNK, reliability_job_latest, selection_with_reliability_job
from curation.pairs.selection import SELECTION_FIELDS, SOURCES, Selection, selection_from_params

__all__ = [
    "AGGREGATIONS",
    "CHUNK",
    "SELECTION_FIELDS",
    "SOURCES",
    "AggregatedPair",
    "Selection",
    "Vote",
    "aggregate_votes",
    "iter_pointwise_rows",
    "iter_preference_pairs",
    "iter_ranked_lists",
    "pair_key",
    "pseudonymous_annotator",
    "reliability_job_latest",
    "selection_from_params",
    "selection_with_reliability_job",
]

"""Suspect labels: pairs whose label a held-out reward model contradicts with confidence.

The same scoring as FiFA (one ``PairScore`` per pair, with ``suspect`` and
``suspect_confidence``), launched for review rather than for filtering.
"""

from __future__ import annotations

from curation.jobs.base import JobKindSpec
from curation.jobs.kinds import fifa
from curation.models import JobKind

SPEC = JobKindSpec(
    kind=JobKind.SUSPECTS.value,
    summary="Flag pairs whose label the out-of-fold reward model contradicts (same scores as FiFA).",
    params=fifa.ScoringParams,
    queue="gpu",
    writes=fifa.SPEC.writes,
    run=fifa.run,
)

"""Leasing one item ahead for the labeling page: a thin call into the queue service."""

from __future__ import annotations

from annotation.services.assignments import assignment_claim_ahead as assignment_lease_ahead

__all__ = ["assignment_lease_ahead"]

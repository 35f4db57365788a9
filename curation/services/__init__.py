"""Writes for curation: the job lifecycle (each kind's own writes live in curation/jobs/kinds/)."""

from __future__ import annotations

from curation.services.jobs import (
    JobCancelled,
    job_cancel,
    job_claim,
    job_create,
    job_fail,
    job_finish,
    job_progress,
    job_retry,
)
from curation.services.routing import routing_send_to_judge

__all__ = [
    "JobCancelled",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_fail",
    "job_finish",
    "job_progress",
    "job_retry",
    "routing_send_to_judge",
]

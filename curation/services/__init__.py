"""Writes for curation: jobs and their lifecycle, dataset versions."""

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

__all__ = [
    "JobCancelled",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_fail",
    "job_finish",
    "job_progress",
    "job_retry",
]

"""What curation announces on the event bus: a job reached its end, a dataset version was published.

Both go through ``annotation.events.publish`` (after commit), like the
annotations the annotation app announces, so webhooks hear all three the same way.
"""

from __future__ import annotations

from annotation.events import publish
from curation.models import TERMINAL, DatasetVersion, Job


def job_finished_publish(*, job_id: int) -> None:
    """Announce that the job reached succeeded, failed or cancelled. Call after the status update."""
    job = (
        Job.objects.filter(pk=job_id)
        .only("id", "project_id", "kind", "status", "message", "error", "attempts", "finished_at")
        .first()
    )
    if job is None or job.status not in TERMINAL:
        return
    publish(
        "job.finished",
        project_id=job.project_id,
        # A retried job finishes again: each run is its own event.
        key=f"job.finished:{job.pk}:{job.attempts}:{job.status}",
        payload={
            "job_id": job.pk,
            "kind": job.kind,
            "status": job.status,
            "message": job.message,
            "error": job.error[:1000],
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        },
    )


def dataset_version_published_publish(*, version: DatasetVersion) -> None:
    """Announce a newly stored dataset version (after its transaction commits)."""
    publish(
        "dataset_version.published",
        project_id=version.project_id,
        key=f"dataset_version.published:{version.pk}",
        payload={
            "dataset_version_id": version.pk,
            "version": version.version,
            "name": version.name,
            "format": version.format,
            "row_counts": version.row_counts,
            "job_id": version.job_id,
            "created_at": version.created_at.isoformat() if version.created_at else None,
        },
    )

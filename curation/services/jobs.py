"""The job lifecycle: create → queued → running → succeeded | failed | cancelled.

A job is claimed by compare-and-set on its status, so two deliveries of the
same task never both run it. A running job whose heartbeat went stale (its
worker died) may be claimed again; that is how a redelivered task finishes it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Project
from curation.models import TERMINAL, Job, JobKind, JobStatus

log = logging.getLogger(__name__)

GPU_KINDS = {JobKind.EMBED, JobKind.REWARD, JobKind.FIFA, JobKind.SUSPECTS, JobKind.EXPLAIN}
RUNNABLE = {JobKind.EMBED, JobKind.REWARD, JobKind.FIFA, JobKind.SUSPECTS, JobKind.EXPORT}


class JobCancelled(Exception):
    """Raised inside a running job when it has been cancelled; the task stops cleanly."""


def queue_for(kind: str) -> str:
    return "gpu" if kind in GPU_KINDS else "default"


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "BALLOT_JOB_STALE_SECONDS", 120))


@transaction.atomic
def job_create(
    *,
    project: Project,
    kind: str,
    params: dict | None = None,
    user: AbstractBaseUser | None = None,
    in_thread: bool | None = None,
) -> Job:
    """Validate the parameters for ``kind``, store a queued job and enqueue it after commit.

    Without a broker the job runs in-process: in a background thread when
    ``in_thread`` (default: the ``BALLOT_JOBS_IN_THREAD`` setting), else inline.
    """
    from curation.handlers import validate_params

    if kind not in JobKind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(JobKind.values)}.", field="kind")
    if kind not in RUNNABLE:
        raise ValidationFailed(f"Jobs of kind {kind!r} are not available yet.", field="kind")
    clean = validate_params(kind=kind, project=project, params=params or {})
    job = Job.objects.create(project=project, kind=kind, params=clean, created_by=user)
    _enqueue_after_commit(job, in_thread=in_thread)
    return job


def _threaded(in_thread: bool | None) -> bool:
    return getattr(settings, "BALLOT_JOBS_IN_THREAD", False) if in_thread is None else in_thread


def _enqueue_after_commit(job: Job, in_thread: bool | None = None) -> None:
    # A worker (or a thread) reads the job through another connection, so it must
    # wait for the commit. Inline eager runs share this connection and go at once.
    if settings.CELERY_TASK_ALWAYS_EAGER and not _threaded(in_thread):
        job_enqueue(job_id=job.id, kind=job.kind, in_thread=False)
    else:
        transaction.on_commit(
            lambda: job_enqueue(job_id=job.id, kind=job.kind, in_thread=in_thread)
        )


def job_enqueue(*, job_id: int, kind: str, in_thread: bool | None = None) -> None:
    """Send the job to its queue. Without a broker it runs in-process (a thread, or inline in tests)."""
    from curation.tasks import run_job

    if settings.CELERY_TASK_ALWAYS_EAGER:
        if _threaded(in_thread):
            thread = threading.Thread(
                target=_run_in_thread, args=(job_id,), daemon=True, name=f"ballot-job-{job_id}"
            )
            thread.start()
        else:
            run_job.apply(args=[job_id])
        return
    result = run_job.apply_async(args=[job_id], queue=queue_for(kind))
    Job.objects.filter(pk=job_id).update(celery_task_id=result.id or "")


def _run_in_thread(job_id: int) -> None:
    from curation.tasks import run_job

    try:
        run_job.apply(args=[job_id])
    finally:
        close_old_connections()


def job_claim(*, job_id: int, worker: str = "") -> bool:
    """Take the job for this run. True when this caller may run it.

    Compare-and-set: only a queued job, or a running job whose heartbeat is
    stale (its worker died), can be claimed; concurrent claimants race on one
    UPDATE and exactly one wins.
    """
    now = timezone.now()
    claimable = Q(status=JobStatus.QUEUED) | Q(
        status=JobStatus.RUNNING, heartbeat_at__lt=now - stale_after()
    )
    return (
        Job.objects.filter(claimable, pk=job_id).update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            message=f"started{' on ' + worker if worker else ''}",
            error="",
        )
        == 1
    )


def job_progress(*, job_id: int, fraction: float, message: str = "") -> None:
    """Record progress and a heartbeat. Raises ``JobCancelled`` when the job was cancelled meanwhile."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    updated = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=fraction, message=message[:500], heartbeat_at=timezone.now()
    )
    if not updated:
        raise JobCancelled(f"job {job_id} is no longer running")


def job_finish(*, job_id: int, result: dict[str, Any]) -> bool:
    return (
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            progress=1.0,
            message="done",
            result=result,
            finished_at=timezone.now(),
        )
        == 1
    )


def job_fail(*, job_id: int, error: str) -> None:
    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED, error=error[:10000], finished_at=timezone.now()
    )


def job_cancel(*, job: Job) -> Job:
    """Cancel a queued or running job. A running one stops at its next progress report."""
    changed = (
        Job.objects.filter(pk=job.pk)
        .exclude(status__in=TERMINAL)
        .update(status=JobStatus.CANCELLED, finished_at=timezone.now(), message="cancelled")
    )
    job.refresh_from_db()
    if not changed and job.status != JobStatus.CANCELLED:
        raise Conflict(f"The job already {job.status}; it cannot be cancelled.")
    return job


def job_retry(*, job: Job) -> Job:
    """Queue a failed or cancelled job again (its results are replaced, never duplicated)."""
    changed = Job.objects.filter(
        pk=job.pk, status__in=(JobStatus.FAILED, JobStatus.CANCELLED)
    ).update(
        status=JobStatus.QUEUED, progress=0.0, message="queued again", error="", finished_at=None
    )
    if not changed:
        raise Conflict("Only a failed or cancelled job can be retried.")
    job.refresh_from_db()
    _enqueue_after_commit(job)
    job.refresh_from_db()
    return job

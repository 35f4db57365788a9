"""The job lifecycle: create → queued → running → succeeded | failed | cancelled.

A job is claimed by compare-and-set on its status, so two deliveries of the
same task never both run it. A running job whose heartbeat went stale (its
worker died) may be claimed again; that is how a redelivered task finishes it.

This module knows job kinds only through :mod:`curation.jobs.registry`: what to
validate, which queue, whether to fan out into shards and what to run. The Celery
tasks (``curation.tasks``) only dispatch to the functions here; they are found by
name, so this module does not import them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import OperationalError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.errors import BallotError, Conflict
from annotation.models import Project
from curation.jobs import registry
from curation.jobs.base import JobCancelled, Report, result_json
from curation.models import TERMINAL, Job, JobStatus
from curation.webhooks.events import job_finished_publish

log = logging.getLogger(__name__)

# The Celery tasks of curation.tasks, by name.
RUN_JOB = "curation.run_job"
RUN_SHARD = "curation.run_shard"
MERGE_SHARDS = "curation.merge_shards"
# Errors after which a task is retried (by Celery, with backoff) rather than the job failed.
TRANSIENT_ERRORS = (OperationalError,)

__all__ = [
    "MERGE_SHARDS",
    "RUN_JOB",
    "RUN_SHARD",
    "TRANSIENT_ERRORS",
    "JobCancelled",
    "RunOutcome",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_enqueue",
    "job_fail",
    "job_finish",
    "job_merge_shards",
    "job_progress",
    "job_retry",
    "job_run",
    "job_run_shard",
]


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

    The job stores exactly its kind's parameters with the defaults filled in. Without
    a broker the job runs in-process: in a background thread when ``in_thread``
    (default: the ``BALLOT_JOBS_IN_THREAD`` setting), else inline. Returns the job as
    stored after enqueueing.
    """
    spec = registry.kind_get(kind)
    clean = spec.params.validate(params or {}, kind=spec.kind, project=project)
    job = Job.objects.create(project=project, kind=spec.kind, params=clean, created_by=user)
    _enqueue_after_commit(job, in_thread=in_thread)
    # An inline run (no broker, no thread) has already moved the row on.
    job.refresh_from_db()
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


def _task(name: str) -> Any:
    # Registered when curation.tasks is imported (CurationConfig.ready, the worker's autodiscovery).
    return current_app.tasks[name]


def job_enqueue(*, job_id: int, kind: str, in_thread: bool | None = None) -> None:
    """Send the job to its kind's queue. Without a broker it runs in-process (a thread, or inline in tests)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if _threaded(in_thread):
            thread = threading.Thread(
                target=_run_in_thread, args=(job_id,), daemon=True, name=f"ballot-job-{job_id}"
            )
            thread.start()
        else:
            _task(RUN_JOB).apply(args=[job_id])
        return
    queue = registry.kind_get(kind).queue
    result = _task(RUN_JOB).apply_async(args=[job_id], queue=queue)
    Job.objects.filter(pk=job_id).update(celery_task_id=result.id or "")


def _run_in_thread(job_id: int) -> None:
    try:
        _task(RUN_JOB).apply(args=[job_id])
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
    finished = (
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            progress=1.0,
            message="done",
            result=result,
            finished_at=timezone.now(),
        )
        == 1
    )
    if finished:
        job_finished_publish(job_id=job_id)
    return finished


def job_fail(*, job_id: int, error: str) -> None:
    if Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED, error=error[:10000], finished_at=timezone.now()
    ):
        job_finished_publish(job_id=job_id)


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
    if changed:
        job_finished_publish(job_id=job.pk)
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


# --- running ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """What the task that delivered a job should do next.

    ``retry_after``: the job is running elsewhere; look again after this many seconds.
    ``shards``: the job fans out; start this many shard tasks on ``queue``, then a merge.
    """

    retry_after: float | None = None
    shards: int = 0
    queue: str = "default"


@contextlib.contextmanager
def _heartbeat(job_id: int, enabled: bool = True) -> Iterator[None]:
    """Refresh the job's heartbeat from a side thread while the work runs.

    "Stale" must mean "the worker died", not "this stage reports no progress for a
    while" (loading a model, one long training epoch); otherwise a duplicate delivery
    could take over a live job. The thread dies with its process, so after a crash
    the heartbeat goes stale and a redelivery can claim the job.
    """
    if not enabled:
        yield
        return
    stop = threading.Event()
    interval = max(stale_after().total_seconds() / 3, 0.5)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()

    thread = threading.Thread(target=beat, daemon=True, name=f"ballot-heartbeat-{job_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def _reporter(job_id: int) -> Report:
    def report(fraction: float, message: str) -> None:
        job_progress(job_id=job_id, fraction=fraction, message=message)

    return report


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BallotError):
        return f"{exc.field}: {exc.detail}" if exc.field else exc.detail
    return f"{type(exc).__name__}: {exc}"


def job_run(*, job_id: int, worker: str = "", eager: bool = False) -> RunOutcome:
    """Claim and run one job. Safe to run twice: a second claim fails, a redelivery after a crash resumes.

    ``eager``: running in the calling process (no broker), so no heartbeat thread and
    no waiting for a run elsewhere.
    """
    if not job_claim(job_id=job_id, worker=worker):
        status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        if status == JobStatus.RUNNING and not eager:
            # Either another run holds it, or this is the redelivery of a run whose worker
            # died and whose heartbeat has not gone stale yet. Look again once it could be
            # stale: a live run will have finished or refreshed it, a dead one can be taken.
            log.info("job %s is running elsewhere; checking again later", job_id)
            return RunOutcome(retry_after=stale_after().total_seconds() + 1)
        log.info("job %s is not claimable (already running or finished)", job_id)
        return RunOutcome()
    job = Job.objects.select_related("project").get(pk=job_id)
    try:
        spec = registry.kind_get(job.kind)
    except BallotError as exc:
        job_fail(job_id=job_id, error=_reason(exc))
        return RunOutcome()
    if spec.shards is not None:
        shards = spec.shards.count(job)
        Job.objects.filter(pk=job.pk).update(
            shards_total=shards, message=f"running in {shards} shard(s)"
        )
        return RunOutcome(shards=shards, queue=spec.queue)
    run = spec.run
    assert run is not None  # a spec has exactly one of run and shards
    with _heartbeat(job_id, enabled=not eager):
        _execute(job, lambda: run(job, _reporter(job_id)))
    return RunOutcome()


def job_run_shard(*, job_id: int, index: int, worker: str = "", eager: bool = False) -> str:
    """Run shard ``index`` of a fanned-out job; returns its artifact path ("" when it did not run)."""
    job = Job.objects.select_related("project").get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return ""
    shards = registry.kind_get(job.kind).shards
    assert shards is not None
    try:
        with _heartbeat(job_id, enabled=not eager):
            path = shards.run(job, index, worker)
    except OperationalError:
        raise  # transient: Celery retries the shard
    except SoftTimeLimitExceeded:
        job_fail(job_id=job_id, error=f"shard {index}: the job ran past its time limit.")
        return ""
    except Exception as exc:
        # A failed header task means the chord never calls the merge, so the job would
        # stay "running" at its last progress forever: fail it here, with the reason.
        log.exception("shard %s of job %s failed", index, job_id)
        job_fail(
            job_id=job_id,
            error=f"shard {index}: {_shard_reason(exc)}\n{traceback.format_exc(limit=5)}",
        )
        return ""
    done = job.shards.filter(done=True).count()
    total = shards.count(job)
    with contextlib.suppress(JobCancelled):
        job_progress(
            job_id=job_id,
            fraction=0.95 * done / max(total, 1),
            message=f"{done}/{total} shards done",
        )
    return path


def _shard_reason(exc: BaseException) -> str:
    if isinstance(exc, BallotError) and exc.field:
        return f"{type(exc).__name__}: {exc.field}: {exc.detail}"
    return f"{type(exc).__name__}: {exc}"


def job_merge_shards(*, job_id: int) -> None:
    """Merge a fanned-out job's shards once all are done, and finish the job."""
    job = Job.objects.select_related("project").get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return
    shards = registry.kind_get(job.kind).shards
    assert shards is not None
    _execute(job, lambda: shards.merge(job, _reporter(job_id)))


def _execute(job: Job, work: Callable[[], dict[str, Any]]) -> None:
    try:
        result = work()
    except JobCancelled:
        log.info("job %s was cancelled", job.id)
        return
    except BallotError as exc:
        job_fail(job_id=job.id, error=_reason(exc))
        return
    except SoftTimeLimitExceeded:
        job_fail(job_id=job.id, error="The job ran past its time limit.")
        return
    except OperationalError:
        raise  # transient: Celery retries the task and the stale-heartbeat claim lets it resume
    except Exception as exc:  # any other failure is recorded on the job, visible in the API
        log.exception("job %s failed", job.id)
        job_fail(
            job_id=job.id, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        )
        return
    job_finish(job_id=job.id, result=result_json(result))

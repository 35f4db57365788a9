"""Celery tasks: thin wrappers that claim a job, call its handler and record the outcome.

One decorator sets what every task needs: late acknowledgement (a message is
acked only after the task finished), requeue when the worker process dies,
time limits, and retries with backoff on transient database errors.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import traceback
from functools import wraps

from celery import chord, group, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError, connection
from django.utils import timezone

from annotation.errors import BallotError
from curation.handlers import HANDLERS, result_json, run_embed_merge, run_embed_shard
from curation.models import Job, JobKind, JobStatus
from curation.services.jobs import (
    JobCancelled,
    job_claim,
    job_fail,
    job_finish,
    job_progress,
    queue_for,
    stale_after,
)

log = logging.getLogger(__name__)


def ballot_task(**options):
    """``shared_task`` with Ballot's defaults: acks_late, reject_on_worker_lost, limits, retries."""
    defaults = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "soft_time_limit": 6 * 3600,
        "time_limit": 6 * 3600 + 300,
        "autoretry_for": (OperationalError,),
        "retry_backoff": True,
        "max_retries": 5,
    }
    defaults.update(options)

    def decorate(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        return shared_task(**defaults)(wrapper)

    return decorate


@contextlib.contextmanager
def _heartbeat(job_id: int, enabled: bool = True):
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


def _worker_name(task) -> str:
    return getattr(task.request, "hostname", None) or socket.gethostname()


def _reporter(job_id: int):
    def report(fraction: float, message: str) -> None:
        job_progress(job_id=job_id, fraction=fraction, message=message)

    return report


@ballot_task(name="curation.run_job")
def run_job(self, job_id: int) -> None:
    """Claim and run one job. Safe to run twice: a second claim fails, a redelivery after a crash resumes."""
    if not job_claim(job_id=job_id, worker=_worker_name(self)):
        status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        if status == JobStatus.RUNNING and not self.request.is_eager:
            # Either another run holds it, or this is the redelivery of a run whose worker
            # died and whose heartbeat has not gone stale yet. Look again once it could be
            # stale: a live run will have finished or refreshed it, a dead one can be taken.
            log.info("job %s is running elsewhere; checking again later", job_id)
            raise self.retry(countdown=stale_after().total_seconds() + 1, max_retries=None)
        log.info("job %s is not claimable (already running or finished)", job_id)
        return
    job = Job.objects.select_related("project").get(pk=job_id)
    if job.kind == JobKind.EMBED:
        _start_embedding(job)
        return
    with _heartbeat(job_id, enabled=not self.request.is_eager):
        _execute(job, lambda: _handler(job)(job, _reporter(job_id)))


def _handler(job: Job):
    if job.kind == JobKind.EXPORT:
        from curation.services.datasets import run_export

        return run_export
    return HANDLERS[job.kind]


def _execute(job: Job, work) -> None:
    try:
        result = work()
    except JobCancelled:
        log.info("job %s was cancelled", job.id)
        return
    except BallotError as exc:
        job_fail(job_id=job.id, error=f"{exc.field}: {exc.detail}" if exc.field else exc.detail)
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


def _start_embedding(job: Job) -> None:
    """Split the embedding job into shards (a Celery group) and merge their artifacts in a chord callback."""
    shards = int(job.params.get("shards", 1))
    Job.objects.filter(pk=job.pk).update(
        shards_total=shards, message=f"embedding in {shards} shard(s)"
    )
    queue = queue_for(job.kind)
    header = group(embed_shard.s(job.id, index).set(queue=queue) for index in range(shards))
    chord(header)(embed_merge.s(job.id).set(queue=queue))


@ballot_task(name="curation.embed_shard")
def embed_shard(self, job_id: int, index: int) -> str:
    job = Job.objects.select_related("project").get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return ""
    try:
        with _heartbeat(job_id, enabled=not self.request.is_eager):
            path = run_embed_shard(job, index, worker=_worker_name(self))
    except OperationalError:
        raise  # transient: Celery retries the shard
    except SoftTimeLimitExceeded:
        job_fail(job_id=job_id, error=f"shard {index}: the job ran past its time limit.")
        return ""
    except Exception as exc:
        # A failed header task means the chord never calls the merge, so the job would
        # stay "running" at its last progress forever: fail it here, with the reason.
        log.exception("shard %s of job %s failed", index, job_id)
        reason = f"{exc.field}: {exc.detail}" if isinstance(exc, BallotError) and exc.field else exc
        job_fail(
            job_id=job_id,
            error=f"shard {index}: {type(exc).__name__}: {reason}\n{traceback.format_exc(limit=5)}",
        )
        return ""
    done = job.shards.filter(done=True).count()
    with contextlib.suppress(JobCancelled):
        job_progress(
            job_id=job_id,
            fraction=0.95 * done / max(job.params["shards"], 1),
            message=f"{done}/{job.params['shards']} shards embedded",
        )
    return path


@ballot_task(name="curation.embed_merge")
def embed_merge(self, shard_paths: list[str], job_id: int) -> None:
    job = Job.objects.select_related("project").get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return
    _execute(job, lambda: run_embed_merge(job, _reporter(job_id)))

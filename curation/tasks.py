"""Celery tasks: they only dispatch to the job lifecycle (``curation.services.jobs``).

One decorator sets what every task needs: late acknowledgement (a message is
acked only after the task finished), requeue when the worker process dies,
time limits, and retries with backoff on transient database errors. What a job
does, which queue it goes to and whether it fans out is the registry's business
(``curation.jobs.registry``); the lifecycle tells the task what to do next.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import chord, group, shared_task

from curation.services import jobs


def ballot_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``shared_task`` with Ballot's defaults: acks_late, reject_on_worker_lost, limits, retries."""
    defaults: dict[str, Any] = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "soft_time_limit": 6 * 3600,
        "time_limit": 6 * 3600 + 300,
        "autoretry_for": jobs.TRANSIENT_ERRORS,
        "retry_backoff": True,
        "max_retries": 5,
    }
    defaults.update(options)

    def decorate(func: Callable[..., Any]) -> Any:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return shared_task(**defaults)(wrapper)

    return decorate


def _worker_name(task: Any) -> str:
    return getattr(task.request, "hostname", None) or socket.gethostname()


@ballot_task(name=jobs.RUN_JOB)
def run_job(self: Any, job_id: int) -> None:
    """Claim and run one job; a fanned-out job continues as a chord of shards and a merge."""
    outcome = jobs.job_run(job_id=job_id, worker=_worker_name(self), eager=self.request.is_eager)
    if outcome.retry_after is not None:
        # Look again until the run elsewhere ends or goes stale, however long it runs: the
        # task's max_retries is for transient errors. Celery reads retry(max_retries=None)
        # as "the task's limit", so the limit given is always one above this delivery's
        # count; the override retry() leaves on the task object is removed, or the next
        # transient error's autoretry in this process would read it.
        retry = self.retry(
            countdown=outcome.retry_after, max_retries=self.request.retries + 1, throw=False
        )
        self.__dict__.pop("override_max_retries", None)
        raise retry
    if outcome.shards:
        header = group(
            run_shard.s(job_id, index).set(queue=outcome.queue) for index in range(outcome.shards)
        )
        chord(header)(merge_shards.s(job_id).set(queue=outcome.queue))


@ballot_task(name=jobs.RUN_SHARD)
def run_shard(self: Any, job_id: int, index: int) -> str:
    return jobs.job_run_shard(
        job_id=job_id, index=index, worker=_worker_name(self), eager=self.request.is_eager
    )


@ballot_task(name=jobs.MERGE_SHARDS)
def merge_shards(self: Any, shard_paths: list[str], job_id: int) -> None:
    jobs.job_merge_shards(job_id=job_id)

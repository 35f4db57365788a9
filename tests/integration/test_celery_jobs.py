"""Jobs on real Celery workers: sharding across processes, duplicate deliveries, a killed worker."""

from __future__ import annotations

import json
import signal
import threading
import time

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from annotation.services import items_import
from curation.jobs.kinds.embed import project_texts
from curation.jobs.registry import kind_get
from curation.models import TERMINAL, Artifact, Job, JobKind, JobShard, JobStatus, PairScore
from curation.services.jobs import job_claim, job_create
from curation.storage import absolute
from tests.factories import ProjectFactory, UserFactory

from .conftest import STALE_SECONDS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

WORDS = [
    *("model", "answer", "helpful", "harmless", "honest", "polite", "careful", "detailed"),
    *("brief", "clear", "wrong", "vague", "rude", "unsafe", "kind", "precise", "friendly"),
    *("curt", "thorough", "lazy"),
]


def _sentence(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + 3 * i + i * i) % len(WORDS)] for i in range(words)) + "."


def _project_with_pairs(*, pairs: int, words: int = 8):
    """A project of ``pairs`` prompts, each with a chosen and a rejected response (TRL rows)."""
    owner = UserFactory(username="owner")
    project = ProjectFactory(created_by=owner)
    rows = [
        {
            "external_id": f"pair-{i}",
            "prompt": f"Question {i}: {_sentence(i, words)}",
            "chosen": f"Good answer {i}: {_sentence(i + 1, words)}",
            "rejected": f"Bad answer {i}: {_sentence(i + 2, words)}",
        }
        for i in range(pairs)
    ]
    result = items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="trl")
    assert result.created == pairs
    return owner, project


def _wait_for_job(job: Job, *, until, timeout: float, interval: float = 0.2) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job.refresh_from_db()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(interval)


def _terminal(job: Job) -> bool:
    return job.status in TERMINAL


def _describe(job: Job) -> str:
    return (
        f"job {job.pk}: status={job.status} attempts={job.attempts} progress={job.progress:.2f} "
        f"message={job.message!r} heartbeat_at={job.heartbeat_at} error={job.error[:2000]!r}"
    )


@pytest.mark.slow
def test_a_sharded_embedding_runs_on_two_workers_and_merges_every_text_once(
    tiny_embeddings, celery_workers
):
    first, second = celery_workers("w1", "w2")
    owner, project = _project_with_pairs(pairs=40)

    job = job_create(project=project, kind=JobKind.EMBED, params={"shards": 4}, user=owner)
    job = _wait_for_job(job, until=_terminal, timeout=180)

    assert job.status == JobStatus.SUCCEEDED, _describe(job)
    texts = project_texts(project)
    assert len(texts) == 120  # 40 prompts and 80 responses, all distinct
    artifact = Artifact.objects.get(job=job, kind="embeddings")
    vectors = np.load(absolute(artifact.path))
    assert vectors.shape == (len(texts), job.result["dim"])
    # The workers embedded with the tiny encoder the test configured, not MiniLM.
    config = json.loads((tiny_embeddings / "tiny-encoder" / "config.json").read_text())
    assert job.result["dim"] == config["hidden_size"]
    assert artifact.metadata["shape"] == list(vectors.shape)
    # Shards concatenate in index order: row i is text i, wherever its shard ran.
    from models_gpu import embed_texts

    sample = [0, 29, 30, 59, 60, 119]  # both edges of every shard boundary
    expected = embed_texts([texts[i] for i in sample], config=_default_embedding_config())
    np.testing.assert_allclose(vectors[sample], expected, atol=1e-4)

    shards = list(JobShard.objects.filter(job=job))
    assert [s.index for s in shards] == [0, 1, 2, 3]
    assert all(s.done for s in shards)
    workers = {s.worker for s in shards}
    assert workers <= {first.nodename, second.nodename}
    assert len(workers) == 2, f"all shards ran on {workers}"
    assert job.result["workers"] == sorted(workers)
    assert job.attempts == 1


def _default_embedding_config():
    from curation.jobs.kinds.embed import EmbedParams

    return EmbedParams().embedding()


@pytest.mark.slow
def test_a_job_claimed_twice_runs_once(tiny_embeddings, celery_workers):
    first, second = celery_workers("w1", "w2")
    owner, project = _project_with_pairs(pairs=40)
    params = kind_get(JobKind.FIFA).params.validate({}, kind=JobKind.FIFA, project=project)

    # Two claimants race on one compare-and-set UPDATE: exactly one wins.
    raced = Job.objects.create(project=project, kind=JobKind.FIFA, params=params)
    barrier = threading.Barrier(2)
    outcomes: list[bool] = []

    def claim(worker: str) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(job_claim(job_id=raced.pk, worker=worker))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [False, True]
    assert job_claim(job_id=raced.pk, worker="c") is False  # running, heartbeat fresh
    raced.refresh_from_db()
    assert raced.attempts == 1

    # The same queued job delivered twice, to two idle workers at once.
    from curation.tasks import run_job

    job = Job.objects.create(project=project, kind=JobKind.FIFA, params=params, created_by=owner)
    deliveries = [run_job.apply_async(args=[job.pk], queue="gpu") for _ in range(2)]
    for delivery in deliveries:
        delivery.get(timeout=180)
    job.refresh_from_db()

    assert job.status == JobStatus.SUCCEEDED, _describe(job)
    assert job.attempts == 1
    assert job.result["pairs"] == 40
    assert PairScore.objects.filter(job=job).count() == 40
    assert Artifact.objects.filter(job=job).count() == 1
    logs = [worker.log() for worker in (first, second)]
    skipped = sum(log.count(f"job {job.pk} is not claimable") for log in logs)
    assert skipped == 1, "the second delivery should have found the job taken"


@pytest.mark.slow
def test_a_job_whose_worker_was_killed_is_retried_and_finishes(celery_workers):
    # MiniLM on purpose: the job must run for seconds so that its worker can be killed mid-way.
    workers = celery_workers("w1", "w2")
    # Enough longer texts that embedding and training take several seconds on a CPU.
    owner, project = _project_with_pairs(pairs=150, words=16)
    job = job_create(project=project, kind=JobKind.FIFA, params={}, user=owner)
    job = _wait_for_job(
        job,
        until=lambda j: _terminal(j) or (j.status == JobStatus.RUNNING and j.progress > 0),
        timeout=120,
        interval=0.05,
    )
    assert job.status == JobStatus.RUNNING, f"never caught it running: {_describe(job)}"
    received = f"curation.run_job[{job.celery_task_id}] received"
    running_on = [w for w in workers if received in w.log()]
    assert len(running_on) == 1, "the job's task should have gone to exactly one worker"
    victim = running_on[0]
    children = victim.pool_children()
    assert len(children) == 1
    children[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()

    job = _wait_for_job(job, until=lambda j: _terminal(j) or _stranded(j), timeout=150)

    assert job.status == JobStatus.SUCCEEDED, (
        f"{_describe(job)}; {time.monotonic() - killed_at:.0f} s after the kill "
        f"(stale after {STALE_SECONDS} s)"
    )
    assert job.attempts >= 2
    assert PairScore.objects.filter(job=job).count() == 150
    assert "WorkerLostError" in victim.log()


def _stranded(job: Job) -> bool:
    # Running, yet nobody has reported progress for far longer than the stale window:
    # no worker will ever take it again.
    if job.status != JobStatus.RUNNING or job.heartbeat_at is None:
        return False
    return (timezone.now() - job.heartbeat_at).total_seconds() > STALE_SECONDS + 30


def test_a_shard_that_fails_on_a_worker_fails_the_job_with_the_reason(
    celery_workers, tmp_path, monkeypatch, settings
):
    # A folder under the configured model root that holds no model: accepted when the job
    # is created, it fails inside the shards. Before, the chord never called the merge and
    # the job stayed "running" with the error only in the worker's log.
    root = tmp_path / "models"
    (root / "broken").mkdir(parents=True)
    monkeypatch.setenv("BALLOT_MODEL_ROOTS", str(root))
    settings.BALLOT_MODEL_ROOTS = [str(root)]
    celery_workers("w1")
    owner, project = _project_with_pairs(pairs=10)

    job = job_create(
        project=project,
        kind=JobKind.EMBED,
        params={"shards": 2, "embedding_model": "broken"},
        user=owner,
    )
    job = _wait_for_job(job, until=_terminal, timeout=120)

    assert job.status == JobStatus.FAILED, _describe(job)
    assert job.error.startswith("shard ") and job.finished_at is not None

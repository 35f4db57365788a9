"""The label-ai job on a real Celery worker: it calls the stub judge over loopback and stores AI labels."""

from __future__ import annotations

import time

import pytest

from annotation.models import Annotation, PairwiseAnswer, Source
from curation.judges.services import judge_create
from curation.models import TERMINAL, JobKind, JobStatus, JudgeVerdict
from curation.services.jobs import job_create
from tests.factories import ItemFactory, ProjectFactory, UserFactory, make_questions
from tests.judge_stub import JudgeStub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]


def _wait(job, timeout=90):
    deadline = time.monotonic() + timeout
    progress = []
    while time.monotonic() < deadline:
        job.refresh_from_db()
        progress.append(job.progress)
        if job.status in TERMINAL:
            return job, progress
        time.sleep(0.1)
    return job, progress


@pytest.mark.slow
def test_a_worker_labels_items_with_the_judge_and_a_rerun_writes_nothing(
    celery_workers, monkeypatch, settings
):
    # The worker reads its policy from the environment; this process from settings.
    monkeypatch.setenv("BALLOT_OUTBOUND_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("BALLOT_JUDGE_SECRET_KEY", "integration-judge-key")
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_SECRET_KEY = "integration-judge-key"
    stub = JudgeStub(delay=0.02).start()
    try:
        (worker,) = celery_workers("judge-worker")
        owner = UserFactory(username="owner")
        project = ProjectFactory(created_by=owner)
        make_questions(project, [{"kind": "pairwise", "name": "preference"}])
        items = []
        for i in range(12):
            texts = [f"GOOD answer {i}.", f"weak answer {i}."]
            items.append(ItemFactory(project=project, responses=texts if i % 2 else texts[::-1]))
        judge = judge_create(
            project=project,
            user=owner,
            data={
                "name": "stub",
                "backend": "openai",
                "base_url": stub.base_url,
                "model": "m",
                "api_key": "sk-worker",
                "concurrency": 4,
            },
        )

        job = job_create(
            project=project,
            kind=JobKind.LABEL_AI,
            params={"judge": judge.id, "batch_items": 4},
            user=owner,
        )
        job, progress = _wait(job)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.result["annotations"] == 12 and job.result["labels"] == 12
        assert job.progress == 1.0
        assert len(stub.requests) == 24
        # The worker decrypted the stored key with the same secret and sent it.
        assert stub.requests[0]["headers"]["Authorization"] == "Bearer sk-worker"
        assert stub.max_active <= 4
        chosen = PairwiseAnswer.objects.filter(annotation__source=Source.AI).select_related(
            "chosen"
        )
        assert all("GOOD" in answer.chosen.text for answer in chosen)
        assert JudgeVerdict.objects.filter(job=job).count() == 12

        rerun = job_create(project=project, kind=JobKind.LABEL_AI, params={"judge": judge.id})
        rerun, _ = _wait(rerun)
        assert rerun.status == JobStatus.SUCCEEDED, rerun.error
        assert rerun.result["annotations"] == 0 and rerun.result["requests"] == 0
        assert Annotation.objects.filter(source=Source.AI).count() == 12
        assert len(stub.requests) == 24
        # The key went to the judge server only: the worker never logged it.
        assert "sk-worker" not in worker.log()
    finally:
        stub.stop()

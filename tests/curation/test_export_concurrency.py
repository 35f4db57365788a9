"""Concurrent exports of one project on PostgreSQL: every one gets its own version number."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from annotation.models import Project
from curation.jobs.kinds.export import ExportParams
from curation.models import DatasetVersion, Job, JobKind, JobStatus
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EXPORTS = 8


def test_eight_concurrent_exports_of_one_project_each_publish_a_distinct_version(
    settings, tmp_path, monkeypatch
):
    import curation.jobs.kinds.export as service
    from curation.tasks import run_job

    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    owner = UserFactory(username="owner")
    project = Project.objects.create(name="exports", created_by=owner)
    params = ExportParams.validate(
        {"format": "trl_preference", "outputs": ["jsonl"]}, kind=JobKind.EXPORT, project=project
    )
    jobs = [
        Job.objects.create(project=project, kind=JobKind.EXPORT, params=params, created_by=owner)
        for _ in range(EXPORTS)
    ]
    # Release every export into the version allocation at once: the race the lock must win.
    ready = threading.Barrier(EXPORTS)
    write_export = service.write_export

    def write_then_wait(*args, **kwargs):
        result = write_export(*args, **kwargs)
        ready.wait(timeout=60)
        return result

    monkeypatch.setattr(service, "write_export", write_then_wait)
    errors: list[BaseException] = []

    def run(job_id: int) -> None:
        try:
            run_job.apply(args=[job_id])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job.id,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    finished = {job.id: (job.status, job.error) for job in Job.objects.filter(project=project)}
    assert all(status == JobStatus.SUCCEEDED for status, _ in finished.values()), finished
    versions = sorted(
        DatasetVersion.objects.filter(project=project).values_list("version", flat=True)
    )
    assert versions == list(range(1, EXPORTS + 1))

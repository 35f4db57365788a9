"""The reliability job and an export under its policy, launched through the API, run by a real Celery worker."""

from __future__ import annotations

import json

import pytest

from annotation.models import Role
from annotation.services import items_import, question_create
from curation.models import AnnotatorReliability, DatasetVersion, ItemPosterior, Job, JobStatus
from tests.curation.test_reliability import simulated_rows
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

from .test_celery_jobs import _describe, _terminal, _wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]


@pytest.mark.slow
def test_a_worker_fits_reliability_and_an_export_then_uses_its_posteriors(
    celery_workers, api, settings, tmp_path
):
    celery_workers("w1")
    owner = UserFactory(username="owner")
    project = ProjectFactory(created_by=owner)
    MembershipFactory(user=owner, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference", config={})
    rows, _, planted = simulated_rows(n_items=120)
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")
    client = api(owner)
    base = f"/api/v1/projects/{project.id}"

    response = client.post(
        f"{base}/jobs/", {"kind": "reliability", "params": {"model": "mace"}}, format="json"
    )
    assert response.status_code == 202, response.content
    job = _wait_for_job(Job.objects.get(pk=response.json()["id"]), until=_terminal, timeout=120)

    assert job.status == JobStatus.SUCCEEDED, _describe(job)
    assert job.progress == 1.0 and job.attempts == 1
    assert job.result["fits"][0]["converged"]
    reliabilities = AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    lowest = sorted(reliabilities, key=lambda r: r.reliability)[: len(planted)]
    assert {r.annotator.username.removeprefix("imported-") for r in lowest} == set(planted)
    assert ItemPosterior.objects.filter(job=job).count() == 120

    response = client.post(
        f"{base}/datasets/",
        {"format": "trl_preference", "outputs": ["jsonl"], "aggregation": "reliability"},
        format="json",
    )
    assert response.status_code == 202, response.content
    export = _wait_for_job(Job.objects.get(pk=response.json()["id"]), until=_terminal, timeout=120)
    assert export.status == JobStatus.SUCCEEDED, _describe(export)
    version = DatasetVersion.objects.get(job=export)
    assert version.manifest["aggregation"] == {
        "policy": "reliability",
        "source": "human",
        "reliability_job": job.id,
    }
    assert sum(version.row_counts.values()) > 0

"""The explain job through the API on Redis with a real Celery worker, then the feature's
pages in the API and the review action on what the worker stored."""

from __future__ import annotations

import pytest

from curation.models import Explanation, Job, JobStatus, ReviewEntry
from tests.explanation_world import import_planted

from .test_celery_jobs import _describe, _terminal, _wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]


@pytest.mark.slow
def test_an_explanation_runs_on_a_worker_and_is_read_and_acted_on_through_the_api(
    project, alice, api, tiny_embeddings, celery_workers
):
    (worker,) = celery_workers("w1")
    import_planted(project, 60, disagree=True)
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{project.id}/jobs/",
        {
            "kind": "explain",
            "params": {
                "n_features": 8,
                "k_active": 2,
                "max_epochs": 5,
                "min_group_judgements": 10,
            },
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    job = _wait_for_job(Job.objects.get(pk=response.json()["id"]), until=_terminal, timeout=240)
    assert job.status == JobStatus.SUCCEEDED, _describe(job)
    assert job.celery_task_id in worker.log()  # the worker ran it, not this process
    assert Explanation.objects.filter(job=job).count() == 1

    base = f"/api/v1/projects/{project.id}/explanations/"
    listed = client.get(base).json()["results"]
    assert [row["job"] for row in listed] == [job.id]
    detail = client.get(f"{base}{job.id}/").json()
    assert len(detail["features"]) == 8 and detail["counts"]["pairs"] == 60
    top = detail["features"][0]["index"]
    feature = client.get(f"{base}{job.id}/features/{top}/").json()
    assert feature["examples"]
    for example in feature["examples"]:
        for side in ("left", "right"):
            text = example[side]["text"]
            assert all(0 <= s["start"] < s["end"] <= len(text) for s in example[side]["spans"])
    groups = client.get(f"{base}{job.id}/features/{top}/groups/").json()
    assert {g["value"] for g in groups["group_effects"] if g["field"] == "country"} == {"US", "GB"}

    review = f"{base}{job.id}/features/{top}/review/"
    first = client.post(review, {"top": 5}, format="json").json()
    again = client.post(review, {"top": 5}, format="json").json()
    assert first["added"] == 5 and again["added"] == 0
    assert ReviewEntry.objects.filter(source="explanation", job=job).count() == 5

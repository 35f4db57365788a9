"""Routing on a real Celery worker: the job from the API, then the queue serves human-routed items first."""

from __future__ import annotations

import json

import pytest

from annotation.models import Item, Membership, Role
from annotation.services import items_import
from annotation.services.assignments import assignment_claim_next
from curation.models import JobStatus, RoutingDecision
from tests.browser.test_workspace_routing import judged_rows
from tests.factories import UserFactory

from .test_celery_jobs import _describe, _terminal, _wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]


@pytest.mark.slow
def test_a_route_job_on_a_worker_gives_human_routed_items_to_annotators_first(
    project, alice, api, tiny_embeddings, celery_workers
):
    (worker,) = celery_workers("w1")
    items_import(project=project, lines=[json.dumps(r) for r in judged_rows(36)], fmt="native")
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {
            "kind": "route",
            "params": {"budget": 0.25, "strategy": "error", "folds": 3, "clusters": 2},
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    from curation.models import Job

    job = _wait_for_job(Job.objects.get(pk=response.json()["id"]), until=_terminal, timeout=180)
    assert job.status == JobStatus.SUCCEEDED, _describe(job)
    assert job.celery_task_id in worker.log()  # the worker ran it, not this process
    human = list(
        RoutingDecision.objects.filter(job=job, route="human")
        .order_by("rank")
        .values_list("item_id", flat=True)
    )
    assert len(human) == 9
    # The judge errs on every third item (its orders disagree): 9 of those 12 go to humans.
    erring = {f"r{i}" for i in range(36) if i % 3 == 0}
    assert {Item.objects.get(pk=i).external_id for i in human} < erring
    served = []
    for n in range(len(human) + 1):
        annotator = UserFactory(username=f"annotator{n}")
        Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
        served.append(assignment_claim_next(project=project, annotator=annotator).item_id)
    # Overlap 1: each annotator takes the next item; human-routed items come first, in rank order.
    assert project.overlap == 1
    assert served[:-1] == human
    assert served[-1] not in human

"""Routing on a real Celery worker: route, the judge labels the AI-routed items, and the queue
serves the human-routed items first."""

from __future__ import annotations

import json

import pytest

from annotation.models import Annotation, Item, Membership, Role, Source
from annotation.services import items_import
from annotation.services.assignments import assignment_claim_next
from curation.judges.services import judge_create
from curation.models import Job, JobStatus, RoutingDecision
from tests.browser.test_workspace_routing import judged_rows
from tests.factories import UserFactory
from tests.judge_stub import JudgeStub

from .test_celery_jobs import _describe, _terminal, _wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]


@pytest.mark.slow
def test_route_then_judge_labels_the_ai_routed_items_and_annotators_get_the_human_ones_first(
    project, alice, api, tiny_embeddings, celery_workers, monkeypatch, settings
):
    # The worker reads its outbound policy from the environment; this process from settings.
    monkeypatch.setenv("BALLOT_OUTBOUND_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("BALLOT_JUDGE_SECRET_KEY", "routing-judge-key")
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_SECRET_KEY = "routing-judge-key"
    stub = JudgeStub().start()
    try:
        _route_label_and_serve(project, alice, api, celery_workers, stub)
    finally:
        stub.stop()


def _route_label_and_serve(project, alice, api, celery_workers, stub):
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
    ai_routed = set(
        RoutingDecision.objects.filter(job=job, route="ai").values_list("item_id", flat=True)
    )
    judge = judge_create(
        project=project,
        user=alice,
        data={
            "name": "remote",
            "backend": "openai",
            "base_url": stub.base_url,
            "model": "m",
            "api_key": "sk-routing",
        },
    )
    sent = api(alice).post(
        f"/api/v1/projects/{project.id}/routing/send-to-judge/",
        {"job": job.id, "judge": judge.id},
        format="json",
    )
    assert sent.status_code == 202, sent.content
    labelling = _wait_for_job(Job.objects.get(pk=sent.json()["id"]), until=_terminal, timeout=120)
    assert labelling.status == JobStatus.SUCCEEDED, _describe(labelling)
    labelled = set(
        Annotation.objects.filter(project=project, source=Source.AI)
        .exclude(judge_name="stub")
        .values_list("item_id", flat=True)
    )
    # The judge labelled exactly the items routed to it, none of the human-routed ones.
    assert labelled == ai_routed and stub.requests
    served = []
    for n in range(len(human) + 1):
        annotator = UserFactory(username=f"annotator{n}")
        Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
        served.append(assignment_claim_next(project=project, annotator=annotator).item_id)
    # Overlap 1: each annotator takes the next item; human-routed items come first, in rank order.
    assert project.overlap == 1
    assert served[:-1] == human
    assert served[-1] not in human

"""Resolving one review entry from several requests at once, on PostgreSQL (real row locks)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from annotation.models import Item, Project, Role
from annotation.services import items_import, question_create, token_create
from curation.models import Adjudication, ReviewEntry, ReviewSource
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _post_all(url: str, bodies: list[dict], token: str) -> list[int]:
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def send(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait()
            statuses[index] = client.post(url, bodies[index], format="json").status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


@pytest.fixture
def entries():
    owner = UserFactory(username="owner")
    project = Project.objects.create(name="review race", created_by=owner)
    MembershipFactory(user=owner, project=project, role=Role.CURATOR)
    question_create(project=project, kind="pairwise", name="preference")
    items_import(
        project=project,
        lines=[
            f'{{"external_id": "r{i}", "prompt": "Q{i}", "responses": ["A", "B"]}}'
            for i in range(2)
        ],
        fmt="native",
    )
    _, token = token_create(user=owner)
    made = [
        ReviewEntry.objects.create(item=item, source=ReviewSource.EXPLORER)
        for item in Item.objects.filter(project=project).order_by("id")
    ]
    return project, token, made


def test_six_identical_resolutions_store_one_and_answer_the_rest_with_it(entries):
    project, token, (entry, _) = entries
    url = f"/api/v1/projects/{project.id}/review/{entry.id}/resolve/"
    statuses = _post_all(url, [{"decision": "drop", "reason": "spam"}] * 6, token)
    assert sorted(statuses) == [200] * 5 + [201]
    assert Adjudication.objects.filter(entry=entry).count() == 1
    assert Item.objects.get(pk=entry.item_id).excluded


def test_two_different_resolutions_race_and_exactly_one_wins(entries):
    project, token, (_, entry) = entries
    url = f"/api/v1/projects/{project.id}/review/{entry.id}/resolve/"
    statuses = _post_all(url, [{"decision": "accept"}, {"decision": "drop"}], token)
    assert sorted(statuses) == [201, 409]
    adjudication = Adjudication.objects.get(entry=entry)
    assert Item.objects.get(pk=entry.item_id).excluded == (adjudication.decision == "drop")

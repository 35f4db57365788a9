"""``POST …/submit/?next=1``: the answer and the next leased item in one round trip."""

from __future__ import annotations

import pytest

from annotation.models import Annotation, Assignment, AssignmentStatus
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_items(alice, bob):
    from annotation.models import Role
    from tests.factories import MembershipFactory, make_questions

    project = ProjectFactory(name="One request per item", created_by=alice, overlap=1)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(project, [{"kind": "pairwise", "name": "preference"}])
    for _ in range(2):
        ItemFactory(project=project, responses=["First answer.", "Second answer."])
    return project


def _answer(assignment: dict) -> dict:
    r = [response["id"] for response in assignment["item"]["responses"]]
    return {"answers": [{"question": "preference", "chosen": r[0], "rejected": r[1]}]}


def test_submit_with_next_returns_the_next_lease_and_a_retry_returns_the_same(two_items, bob, api):
    client = api(bob)
    first = client.get(f"/api/v1/projects/{two_items.id}/next/").json()
    url = f"/api/v1/assignments/{first['id']}/submit/?next=1"
    response = client.post(url, _answer(first), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201, response.content
    following = response.json()["next"]
    assert following["id"] != first["id"]
    assert following["item"]["id"] != first["item"]["id"]
    assert len(following["item"]["responses"]) == 2
    # It is a real lease: the queue hands it back, and a retry of the submit returns it too.
    assert client.get(f"/api/v1/projects/{two_items.id}/next/").json()["id"] == following["id"]
    retry = client.post(url, _answer(first), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert retry.status_code == 200 and retry.json()["replayed"] is True
    assert retry.json()["next"]["id"] == following["id"]
    assert Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).count() == 1

    # The last item: the answer is stored and there is nothing next.
    last = client.post(
        f"/api/v1/assignments/{following['id']}/submit/?next=true",
        _answer(following),
        format="json",
    )
    assert last.status_code == 201 and last.json()["next"] is None
    assert Annotation.objects.filter(annotator=bob).count() == 2


def test_without_the_flag_the_response_is_as_before(two_items, bob, api):
    client = api(bob)
    first = client.get(f"/api/v1/projects/{two_items.id}/next/").json()
    response = client.post(
        f"/api/v1/assignments/{first['id']}/submit/", _answer(first), format="json"
    )
    assert response.status_code == 201 and "next" not in response.json()
    assert not Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).exists()


@pytest.mark.parametrize("value", ["maybe", "2", "on!"])
def test_a_bad_flag_is_a_400_naming_it_and_writes_nothing(two_items, bob, api, value):
    client = api(bob)
    first = client.get(f"/api/v1/projects/{two_items.id}/next/").json()
    response = client.post(
        f"/api/v1/assignments/{first['id']}/submit/?next={value}", _answer(first), format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "next"
    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=first["id"]).status == AssignmentStatus.ACTIVE

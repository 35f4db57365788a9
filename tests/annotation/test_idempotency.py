"""An Idempotency-Key is bound to the body it was first sent with."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from annotation.errors import Unprocessable
from annotation.models import Annotation, PairwiseAnswer
from annotation.services import annotation_submit, assignment_claim_next
from tests.factories import ItemFactory, make_questions

PAIRWISE_ONLY = [{"kind": "pairwise", "name": "preference"}]


@pytest.fixture
def pair_assignment(alice, bob):
    from annotation.models import Role
    from tests.factories import MembershipFactory, ProjectFactory

    project = ProjectFactory(created_by=alice)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(project, PAIRWISE_ONLY)
    ItemFactory(project=project, responses=["A.", "B."])
    assignment = assignment_claim_next(project=project, annotator=bob)
    r = list(assignment.item.responses.order_by("position").values_list("id", flat=True))
    return assignment, r


def _answers(chosen: int, rejected: int) -> list[dict]:
    return [{"question": "preference", "chosen": chosen, "rejected": rejected}]


def _post(api, bob, assignment, answers, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api(bob).post(
        f"/api/v1/assignments/{assignment.id}/submit/",
        {"answers": answers},
        format="json",
        **headers,
    )


def test_a_retry_with_the_same_key_and_body_replays_the_first_result(pair_assignment, bob, api):
    assignment, r = pair_assignment
    first = _post(api, bob, assignment, _answers(r[0], r[1]), key="k-1")
    again = _post(api, bob, assignment, _answers(r[0], r[1]), key="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["annotation"] == first.json()["annotation"]
    assert Annotation.objects.count() == 1


def test_the_same_key_with_other_answers_gets_422_and_keeps_the_first_answers(
    pair_assignment, bob, api
):
    assignment, r = pair_assignment
    assert _post(api, bob, assignment, _answers(r[0], r[1]), key="k-2").status_code == 201
    changed = _post(api, bob, assignment, _answers(r[1], r[0]), key="k-2")
    assert changed.status_code == 422
    body = changed.json()
    assert body["error"] == "unprocessable" and body["field"] == "Idempotency-Key"
    stored = PairwiseAnswer.objects.get()
    assert (stored.chosen_id, stored.rejected_id) == (r[0], r[1])


def test_the_same_key_with_another_time_spent_is_another_body(pair_assignment, bob):
    assignment, r = pair_assignment
    annotation_submit(
        assignment_id=assignment.id,
        user=bob,
        answers=_answers(r[0], r[1]),
        time_spent_ms=1000,
        idempotency_key="k-3",
    )
    with pytest.raises(Unprocessable):
        annotation_submit(
            assignment_id=assignment.id,
            user=bob,
            answers=_answers(r[0], r[1]),
            time_spent_ms=2000,
            idempotency_key="k-3",
        )


def test_a_submit_without_a_key_is_stored_once_and_a_second_one_gets_409(pair_assignment, bob, api):
    assignment, r = pair_assignment
    first = _post(api, bob, assignment, _answers(r[0], r[1]))
    assert first.status_code == 201 and first.json()["created"] is True
    second = _post(api, bob, assignment, _answers(r[0], r[1]))
    assert second.status_code == 409 and second.json()["error"] == "conflict"
    assert Annotation.objects.count() == 1


def test_the_schema_documents_the_optional_key_and_the_422(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/assignments/{assignment_id}/submit/"]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and not header.get("required", False)
    assert "422" in header["description"]
    for code in ("200", "201", "400", "409", "410", "422"):
        assert code in operation["responses"], code
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorOut"
    )

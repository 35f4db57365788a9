"""Every answer is validated against its question; bad input writes nothing."""

from __future__ import annotations

import pytest

from annotation.errors import Conflict, LeaseLost, ValidationFailed
from annotation.models import Annotation, AssignmentStatus, CorrectionAnswer, RankingAnswer
from annotation.services import annotation_submit, assignment_claim_next
from tests.factories import ItemFactory, make_questions


@pytest.fixture
def claimed(project, items, bob):
    assignment = assignment_claim_next(project=project, annotator=bob)
    responses = list(assignment.item.responses.order_by("position"))
    return assignment, responses


def _full(responses, **overrides):
    r = [x.id for x in responses]
    answers = {
        "preference": {"question": "preference", "chosen": r[0], "rejected": r[1], "strength": 2},
        "ranking": {"question": "ranking", "ranking": [[r[2]], [r[0], r[1]]]},
        "aspects": {
            "question": "aspects",
            "ratings": [
                {"response": x, "aspect": a, "value": 5}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    }
    answers.update(overrides)
    return [a for a in answers.values() if a is not None]


def _reject(claimed, bob, answers, field_fragment):
    assignment, _ = claimed
    with pytest.raises(ValidationFailed) as error:
        annotation_submit(
            assignment_id=assignment.id, user=bob, answers=answers, idempotency_key="k"
        )
    assert field_fragment in (error.value.field or ""), error.value.as_dict()
    assert Annotation.objects.count() == 0
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.ACTIVE
    return error.value


def test_pairwise_rejects_a_response_from_another_item(claimed, bob, project):
    other = ItemFactory(project=project).responses.first()
    _, responses = claimed
    _reject(
        claimed,
        bob,
        _full(
            responses,
            preference={"question": "preference", "chosen": other.id, "rejected": responses[0].id},
        ),
        "answers[0].chosen",
    )


def test_pairwise_rejects_strength_off_the_scale_and_strength_on_a_tie(claimed, bob):
    _, r = claimed
    _reject(
        claimed,
        bob,
        _full(
            r,
            preference={
                "question": "preference",
                "chosen": r[0].id,
                "rejected": r[1].id,
                "strength": 9,
            },
        ),
        "strength",
    )
    _reject(
        claimed,
        bob,
        _full(
            r,
            preference={
                "question": "preference",
                "chosen": r[0].id,
                "rejected": r[1].id,
                "tie": True,
                "strength": 2,
            },
        ),
        "strength",
    )


def test_ranking_must_cover_each_response_exactly_once(claimed, bob):
    _, r = claimed
    err = _reject(
        claimed,
        bob,
        _full(r, ranking={"question": "ranking", "ranking": [r[0].id, r[1].id]}),
        "answers[1].ranking",
    )
    assert "missing" in err.detail
    _reject(
        claimed,
        bob,
        _full(
            r, ranking={"question": "ranking", "ranking": [r[0].id, [r[1].id, r[0].id], r[2].id]}
        ),
        "ranking",
    )


def test_ranking_accepts_tie_groups(claimed, bob):
    assignment, r = claimed
    annotation, created = annotation_submit(
        assignment_id=assignment.id,
        user=bob,
        answers=_full(r, ranking={"question": "ranking", "ranking": [[r[0].id, r[1].id], r[2].id]}),
    )
    assert created
    assert RankingAnswer.objects.get(annotation=annotation).ranking == [
        [r[0].id, r[1].id],
        [r[2].id],
    ]


def test_ratings_must_lie_on_the_scale_and_cover_every_aspect(claimed, bob):
    _, r = claimed
    ratings = [
        {"response": x.id, "aspect": a, "value": 3}
        for x in r
        for a in ("helpfulness", "harmlessness", "honesty")
    ]
    bad = [dict(ratings[0], value=6)] + ratings[1:]
    _reject(
        claimed,
        bob,
        _full(r, aspects={"question": "aspects", "ratings": bad}),
        "answers[2].ratings[0].value",
    )
    half = [dict(ratings[0], value=2.5)] + ratings[1:]
    _reject(claimed, bob, _full(r, aspects={"question": "aspects", "ratings": half}), "value")
    _reject(
        claimed,
        bob,
        _full(r, aspects={"question": "aspects", "ratings": ratings[:-1]}),
        "answers[2].ratings",
    )
    unknown = [dict(ratings[0], aspect="wit")] + ratings[1:]
    _reject(claimed, bob, _full(r, aspects={"question": "aspects", "ratings": unknown}), "aspect")


def test_a_correction_span_must_match_the_response_text(claimed, bob):
    _, r = claimed
    text = r[0].text
    wrong = {
        "question": "corrections",
        "corrections": [
            {
                "response": r[0].id,
                "start": 0,
                "end": 5,
                "original_text": "nope!",
                "corrected_text": "x",
            }
        ],
    }
    _reject(claimed, bob, _full(r, corrections=wrong), "original_text")
    outside = {
        "question": "corrections",
        "corrections": [
            {
                "response": r[0].id,
                "start": 2,
                "end": len(text) + 3,
                "original_text": text[2:],
                "corrected_text": "x",
            }
        ],
    }
    _reject(claimed, bob, _full(r, corrections=outside), "corrections[0]")


def test_correction_offsets_count_code_points_not_utf16_units(project, bob):
    text = "Emoji 🪐 then Arabic سلام عليكم and more."
    item = ItemFactory(project=project, responses=[text, "other"])
    item.priority = 10
    item.save()
    assignment = assignment_claim_next(project=project, annotator=bob)
    assert assignment.item_id == item.id
    r = list(item.responses.order_by("position"))
    start = text.index("سلام")
    correction = {
        "response": r[0].id,
        "start": start,
        "end": start + 4,
        "original_text": "سلام",
        "corrected_text": "مرحبا",
        "category": "factual",
    }
    answers = [
        {"question": "preference", "chosen": r[0].id, "rejected": r[1].id, "strength": 1},
        {"question": "ranking", "ranking": [r[0].id, r[1].id]},
        {
            "question": "aspects",
            "ratings": [
                {"response": x.id, "aspect": a, "value": 4}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
        {"question": "corrections", "corrections": [correction]},
    ]
    annotation_submit(assignment_id=assignment.id, user=bob, answers=answers)
    stored = CorrectionAnswer.objects.get()
    # The planet emoji is 1 code point but 2 UTF-16 units: the span must count it once.
    assert (stored.start, stored.end) == (start, start + 4) == (20, 24)
    assert text[stored.start : stored.end] == "سلام"


def test_a_retry_with_the_same_key_returns_the_first_result_and_writes_nothing(claimed, bob):
    assignment, r = claimed
    first, created = annotation_submit(
        assignment_id=assignment.id, user=bob, answers=_full(r), idempotency_key="retry-1"
    )
    again, created_again = annotation_submit(
        assignment_id=assignment.id, user=bob, answers=_full(r), idempotency_key="retry-1"
    )
    assert created and not created_again and first.id == again.id
    assert Annotation.objects.count() == 1
    with pytest.raises(Conflict):
        annotation_submit(
            assignment_id=assignment.id, user=bob, answers=_full(r), idempotency_key="another-key"
        )


def test_the_same_key_for_another_assignment_is_a_conflict(project, items, bob, alice):
    a1 = assignment_claim_next(project=project, annotator=bob)
    r = list(a1.item.responses.order_by("position"))
    annotation_submit(assignment_id=a1.id, user=bob, answers=_full(r), idempotency_key="shared")
    a2 = assignment_claim_next(project=project, annotator=alice)
    r2 = list(a2.item.responses.order_by("position"))
    with pytest.raises(Conflict):
        annotation_submit(
            assignment_id=a2.id, user=alice, answers=_full(r2), idempotency_key="shared"
        )


def test_submit_api_answers_400_with_field_and_reason(claimed, bob, api):
    assignment, r = claimed
    response = api(bob).post(
        f"/api/v1/assignments/{assignment.id}/submit/",
        {
            "answers": _full(
                r, preference={"question": "preference", "chosen": r[0].id, "rejected": r[0].id}
            )
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "answers[0].rejected" and "different" in body["detail"]


def test_a_lost_lease_is_410_when_someone_else_took_the_slot(project, bob, alice, charlie):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Membership

    Membership.objects.create(user=charlie, project=project, role="annotator")
    item = ItemFactory(project=project, responses=["x", "y", "z"])
    assignment = assignment_claim_next(project=project, annotator=bob)
    assert assignment.item_id == item.id
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    # Alice arrives after the lease ran out: the slot comes back and she takes it.
    taken = assignment_claim_next(project=project, annotator=alice, now=later)
    assert taken.item_id == item.id
    r = list(item.responses.order_by("position"))
    with pytest.raises(LeaseLost):
        annotation_submit(assignment_id=assignment.id, user=bob, answers=_full(r), now=later)


def test_an_expired_lease_can_still_submit_when_the_slot_is_free(project, bob):
    from datetime import timedelta

    from django.utils import timezone

    item = ItemFactory(project=project, responses=["x", "y", "z"])
    assignment = assignment_claim_next(project=project, annotator=bob)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    from annotation.services import leases_release_expired

    assert leases_release_expired(project=project, now=later) == 1
    r = list(item.responses.order_by("position"))
    _, created = annotation_submit(
        assignment_id=assignment.id, user=bob, answers=_full(r), now=later
    )
    assert created
    item.refresh_from_db()
    assert item.slots_taken == 1


def test_questions_validate_their_config(project):
    from annotation.services import question_config_validate

    with pytest.raises(ValidationFailed) as error:
        question_config_validate(kind="rating", config={"aspects": []})
    assert error.value.field == "config.aspects"
    with pytest.raises(ValidationFailed):
        question_config_validate(
            kind="rating", config={"aspects": ["a"], "scale": {"min": 5, "max": 1}}
        )
    with pytest.raises(ValidationFailed):
        question_config_validate(kind="pairwise", config={"strength_scale": {"min": 3, "max": 1}})
    assert question_config_validate(kind="correction", config={})["categories"]
    make_questions  # noqa: B018 - imported for factories

"""``Item.agreement`` is stored by every writer of pairwise answers and always equals the
figure computed by hand from the judgements (human only, ties as one answer, pooled)."""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
from collections import Counter

import pytest
from django.apps import apps
from django.db import connections, transaction

from annotation.agreement_item import item_agreement, pairwise_choice
from annotation.models import Item, Question, Role
from annotation.services import (
    annotation_submit,
    assignment_claim_next,
    items_import,
    question_delete,
)
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_questions

pytestmark = pytest.mark.django_db

PAIRWISE = [
    {"kind": "pairwise", "name": "preference", "required": False, "config": {"allow_tie": True}},
    {"kind": "pairwise", "name": "style", "required": False, "config": {"allow_tie": True}},
]


def _label(handle: str, *answers: tuple[str, int, int, bool]) -> dict:
    return {
        "annotator": handle,
        "answers": [
            {"question": q, "chosen": chosen, "rejected": rejected, "tie": tie}
            for q, chosen, rejected, tie in answers
        ],
    }


def _row(external_id: str, labels: list[dict], responses: int = 2) -> str:
    return json.dumps(
        {
            "external_id": external_id,
            "prompt": f"Prompt of {external_id}",
            "responses": [f"Answer {n} to {external_id}" for n in range(responses)],
            "annotations": labels,
        }
    )


def _stored(project, external_id: str) -> float | None:
    return Item.objects.get(project=project, external_id=external_id).agreement


@pytest.fixture
def pairwise_project(alice, bob):
    project = ProjectFactory(created_by=alice, overlap=5)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(project, PAIRWISE)
    return project


def test_the_figure_pools_questions_counts_a_tie_once_and_is_empty_under_two_votes():
    assert item_agreement([]) is None
    assert item_agreement([(1, 7)]) is None
    # A tie listed either way round is one answer: both votes agree.
    tie_a, tie_b = (pairwise_choice(chosen_id=7, tie=True), pairwise_choice(chosen_id=8, tie=True))
    assert item_agreement([(1, tie_a), (1, tie_b)]) == 1.0
    # Question 1: 2 of 3 agree; question 2: 1 of 2 (a split counts one side): (2 + 1) / 5.
    assert item_agreement([(1, 7), (1, 7), (1, 8), (2, 7), (2, 8)]) == 0.6


def test_a_pairwise_submit_updates_the_stored_agreement(pairwise_project, bob):
    items_import(
        project=pairwise_project,
        lines=[_row("x", [_label("u1", ("preference", 0, 1, False))])],
        fmt="native",
    )
    assert _stored(pairwise_project, "x") is None
    assignment = assignment_claim_next(project=pairwise_project, annotator=bob)
    first, second = assignment.item.responses.order_by("position")
    annotation_submit(
        assignment_id=assignment.id,
        user=bob,
        answers=[{"question": "preference", "chosen": second.id, "rejected": first.id}],
    )
    assert _stored(pairwise_project, "x") == 0.5

    carol = UserFactory(username="carol")
    MembershipFactory(user=carol, project=pairwise_project, role=Role.ANNOTATOR)
    assignment = assignment_claim_next(project=pairwise_project, annotator=carol)
    annotation_submit(
        assignment_id=assignment.id,
        user=carol,
        answers=[{"question": "preference", "chosen": second.id, "rejected": first.id}],
    )
    assert _stored(pairwise_project, "x") == pytest.approx(2 / 3)


def test_an_import_stores_the_agreement_and_an_update_replaces_it(pairwise_project):
    def run(labels: list[dict], on_conflict: str = "error") -> None:
        items_import(
            project=pairwise_project,
            lines=[_row("y", labels)],
            fmt="native",
            on_conflict=on_conflict,
        )

    run([_label("u1", ("preference", 0, 1, False)), _label("u2", ("preference", 0, 1, False))])
    assert _stored(pairwise_project, "y") == 1.0
    run(
        [_label("u1", ("preference", 0, 1, False)), _label("u2", ("preference", 1, 0, False))],
        on_conflict="update",
    )
    assert _stored(pairwise_project, "y") == 0.5
    # The file now carries no labels: the replaced judgements leave no stale figure.
    run([], on_conflict="update")
    assert _stored(pairwise_project, "y") is None


def test_deleting_a_pairwise_question_refreshes_the_agreement_it_fed(pairwise_project):
    items_import(
        project=pairwise_project,
        lines=[
            _row(
                "z",
                [
                    _label("u1", ("preference", 0, 1, False), ("style", 0, 1, False)),
                    _label("u2", ("preference", 1, 0, False), ("style", 0, 1, False)),
                ],
            )
        ],
        fmt="native",
    )
    assert _stored(pairwise_project, "z") == 0.75
    question_delete(question=Question.objects.get(project=pairwise_project, name="preference"))
    assert _stored(pairwise_project, "z") == 1.0


def _by_hand(row: dict, extra: list[tuple[str, int, bool]]) -> float | None:
    """Human votes per question (a tie is one answer whatever its order), pooled."""
    per_question: dict[str, Counter] = {}
    for label in row["annotations"]:
        if label.get("source") == "ai":
            continue
        for answer in label["answers"]:
            vote = "tie" if answer["tie"] else answer["chosen"]
            per_question.setdefault(answer["question"], Counter())[vote] += 1
    for question, chosen, tie in extra:
        per_question.setdefault(question, Counter())["tie" if tie else chosen] += 1
    total = sum(sum(c.values()) for c in per_question.values())
    if total < 2:
        return None
    return sum(max(c.values()) for c in per_question.values()) / total


def test_the_stored_agreement_equals_the_figure_by_hand_on_a_random_project(pairwise_project, bob):
    rng = random.Random(11)
    rows = []
    for n in range(60):
        labels = []
        for handle in rng.sample(["u1", "u2", "u3", "u4", "u5"], rng.randint(0, 5)):
            answers = []
            for question in rng.sample(["preference", "style"], rng.randint(1, 2)):
                chosen, rejected = rng.sample(range(3), 2)
                answers.append(
                    {
                        "question": question,
                        "chosen": chosen,
                        "rejected": rejected,
                        "tie": rng.random() < 0.2,
                    }
                )
            labels.append({"annotator": handle, "answers": answers})
        if rng.random() < 0.4:
            # An LM judge's verdict never counts towards the people's agreement.
            labels.append(
                {
                    "source": "ai",
                    "judge": "judge-1",
                    "answers": [{"question": "preference", "chosen": 2, "rejected": 0}],
                }
            )
        rows.append(
            {
                "external_id": f"r-{n}",
                "prompt": f"Random prompt {n}",
                "responses": [f"Response {k} of {n}" for k in range(3)],
                "annotations": labels,
            }
        )
    items_import(project=pairwise_project, lines=[json.dumps(r) for r in rows], fmt="native")

    # Bob adds live judgements on top of the imported ones for some items.
    extra: dict[str, list[tuple[str, int, bool]]] = {}
    for _ in range(15):
        assignment = assignment_claim_next(project=pairwise_project, annotator=bob)
        responses = list(assignment.item.responses.order_by("position"))
        chosen, rejected = rng.sample(range(3), 2)
        tie = rng.random() < 0.2
        annotation_submit(
            assignment_id=assignment.id,
            user=bob,
            answers=[
                {
                    "question": "style",
                    "chosen": responses[chosen].id,
                    "rejected": responses[rejected].id,
                    "tie": tie,
                }
            ],
        )
        extra.setdefault(assignment.item.external_id, []).append(("style", chosen, tie))

    stored = dict(
        Item.objects.filter(project=pairwise_project).values_list("external_id", "agreement")
    )
    expected = {
        row["external_id"]: _by_hand(row, extra.get(row["external_id"], [])) for row in rows
    }
    assert stored == expected
    assert any(value is None for value in expected.values())
    assert len({value for value in expected.values() if value is not None}) > 3

    # The migration's fill of existing rows gives the same figures.
    Item.objects.filter(project=pairwise_project).update(agreement=None)
    migration = importlib.import_module("annotation.migrations.0008_item_agreement")
    migration.fill_agreement(apps, None)
    refilled = dict(
        Item.objects.filter(project=pairwise_project).values_list("external_id", "agreement")
    )
    assert refilled == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_people_submitting_on_one_item_at_once_are_both_counted(alice, bob):
    project = ProjectFactory(created_by=alice, overlap=5)
    make_questions(project, PAIRWISE)
    carol = UserFactory(username="carol")
    for user in (bob, carol):
        MembershipFactory(user=user, project=project, role=Role.ANNOTATOR)
    items_import(
        project=project,
        lines=[_row("w", [_label("u1", ("preference", 0, 1, False))])],
        fmt="native",
    )
    by_bob = assignment_claim_next(project=project, annotator=bob)
    by_carol = assignment_claim_next(project=project, annotator=carol)
    first, second = by_bob.item.responses.order_by("position")
    bob_wrote, bob_may_commit = threading.Event(), threading.Event()
    errors: list = []

    def bob_submits() -> None:
        try:
            with transaction.atomic():
                annotation_submit(
                    assignment_id=by_bob.id,
                    user=bob,
                    answers=[{"question": "preference", "chosen": first.id, "rejected": second.id}],
                )
                bob_wrote.set()
                bob_may_commit.wait(10)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            bob_wrote.set()
            connections.close_all()

    def carol_submits() -> None:
        try:
            annotation_submit(
                assignment_id=by_carol.id,
                user=carol,
                answers=[{"question": "preference", "chosen": second.id, "rejected": first.id}],
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    bob_thread = threading.Thread(target=bob_submits)
    carol_thread = threading.Thread(target=carol_submits)
    bob_thread.start()
    bob_wrote.wait(10)
    # Carol submits while Bob's answers are written but not committed.
    carol_thread.start()
    time.sleep(0.5)
    bob_may_commit.set()
    bob_thread.join(20)
    carol_thread.join(20)
    assert errors == []
    # u1 and Bob chose the first response, Carol the second: 2 of 3 agree.
    assert _stored(project, "w") == 2 / 3

"""Adaptive overlap through the real API: items close at the minimum when their votes agree
and ask for one more annotator at a time, up to the maximum, when they do not."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Annotation, Item, Membership, Project, Role
from annotation.services import items_import, question_create
from tests.factories import UserFactory

ADAPTIVE = {
    "adaptive_overlap": True,
    "min_annotators": 3,
    "max_annotators": 5,
    "agreement_threshold": 0.75,
}


def _adaptive_project(api, alice, questions, **options):
    response = api(alice).post(
        "/api/v1/projects/",
        {"name": "adaptive", "questions": questions, **ADAPTIVE, **options},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ADAPTIVE} == ADAPTIVE
    return Project.objects.get(pk=body["id"])


def _members(project, count):
    users = [UserFactory(username=f"voter{index}") for index in range(count)]
    for user in users:
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
    return users


def _import(project, *names, responses=("A", "B")):
    lines = [
        json.dumps({"external_id": name, "prompt": "Which?", "responses": list(responses)})
        for name in names
    ]
    items_import(project=project, lines=lines, fmt="native")


def _label_until_empty(client, project, answer_for):
    """Take items from ``/next/`` and submit ``answer_for(item, responses)`` until 204."""
    done = []
    while True:
        response = client.get(f"/api/v1/projects/{project.id}/next/")
        if response.status_code == 204:
            return done
        assert response.status_code == 200, response.content
        body = response.json()
        responses = [r["id"] for r in body["item"]["responses"]]
        submit = client.post(
            f"/api/v1/assignments/{body['id']}/submit/",
            {"answers": answer_for(body["item"]["external_id"], responses)},
            format="json",
        )
        assert submit.status_code == 201, submit.content
        done.append(body["item"]["external_id"])


def _votes(project):
    items = Item.objects.filter(project=project)
    counts = {item.external_id: 0 for item in items}
    for external_id in Annotation.objects.filter(project=project).values_list(
        "item__external_id", flat=True
    ):
        counts[external_id] += 1
    return counts


def test_unanimous_items_stop_at_the_minimum_and_split_ones_go_to_the_maximum(api, alice):
    project = _adaptive_project(api, alice, [{"kind": "pairwise", "name": "preference"}])
    _import(project, "unanimous", "split", "mostly")
    voters = _members(project, 7)

    def pick(voter_index):
        def answer(external_id, r):
            if external_id == "unanimous":
                chosen = 0
            elif external_id == "split":
                chosen = voter_index % 2
            else:  # A, B, A, A: three of four agree, which meets 0.75.
                chosen = 1 if voter_index == 1 else 0
            return [{"question": "preference", "chosen": r[chosen], "rejected": r[1 - chosen]}]

        return answer

    for index, voter in enumerate(voters):
        _label_until_empty(api(voter), project, pick(index))
    assert _votes(project) == {"unanimous": 3, "split": 5, "mostly": 4}
    rows = {i.external_id: i for i in Item.objects.filter(project=project)}
    assert all(item.is_full for item in rows.values())
    assert (rows["unanimous"].overlap_extra, rows["split"].overlap_extra) == (0, 2)
    assert rows["split"].slots_taken == 5


def test_ratings_close_when_their_spread_is_small(api, alice):
    project = _adaptive_project(
        api,
        alice,
        [{"kind": "rating", "name": "quality", "config": {"aspects": ["overall"]}}],
    )
    _import(project, "close", "far")
    voters = _members(project, 6)
    # close: 4, 4, 5 on 1-5 agree 0.83; far: 1, 4, 5 agree 0.33 and go on to the maximum.
    values = {"close": [4, 4, 5, 5, 5, 5], "far": [1, 4, 5, 1, 3, 3]}

    def rate(voter_index):
        def answer(external_id, r):
            value = values[external_id][voter_index]
            return [
                {
                    "question": "quality",
                    "ratings": [{"response": x, "aspect": "overall", "value": value} for x in r],
                }
            ]

        return answer

    for index, voter in enumerate(voters):
        _label_until_empty(api(voter), project, rate(index))
    assert _votes(project) == {"close": 3, "far": 5}


def test_a_fixed_overlap_project_ignores_disagreement(api, alice):
    response = api(alice).post(
        "/api/v1/projects/",
        {"name": "fixed", "overlap": 2, "questions": [{"kind": "pairwise", "name": "preference"}]},
        format="json",
    )
    project = Project.objects.get(pk=response.json()["id"])
    assert response.json()["adaptive_overlap"] is False
    _import(project, "split")
    voters = _members(project, 3)
    for index, voter in enumerate(voters):
        _label_until_empty(
            api(voter),
            project,
            lambda _, r, i=index: [
                {"question": "preference", "chosen": r[i % 2], "rejected": r[1 - i % 2]}
            ],
        )
    assert _votes(project) == {"split": 2}
    assert Item.objects.get(project=project).overlap_extra == 0


def test_switching_adaptive_overlap_on_moves_items_to_the_minimum(api, alice, bob):
    project = Project.objects.create(name="switch", overlap=1, created_by=alice)
    Membership.objects.create(user=alice, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference")
    _import(project, "one")
    (voter,) = _members(project, 1)
    _label_until_empty(
        api(voter),
        project,
        lambda _, r: [{"question": "preference", "chosen": r[0], "rejected": r[1]}],
    )
    assert Item.objects.get(project=project).is_full
    patched = api(alice).patch(
        f"/api/v1/projects/{project.id}/", {"adaptive_overlap": True}, format="json"
    )
    assert patched.status_code == 200
    assert not Item.objects.get(project=project).is_full


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"min_annotators": 4, "max_annotators": 3}, "max_annotators"),
        ({"min_annotators": 0}, "min_annotators"),
        ({"max_annotators": 101}, "max_annotators"),
        ({"agreement_threshold": 1.5}, "agreement_threshold"),
        ({"confidence_threshold": -0.1}, "confidence_threshold"),
        ({"min_annotators": 6}, "min_annotators"),
    ],
)
def test_bad_adaptive_options_answer_400_naming_the_field(api, alice, project, body, field):
    created = api(alice).post("/api/v1/projects/", {"name": "bad", **body}, format="json")
    assert created.status_code == 400, created.content
    assert created.json()["field"] == field
    patched = api(alice).patch(f"/api/v1/projects/{project.id}/", body, format="json")
    assert patched.status_code == 400
    assert patched.json()["field"] == field


def test_a_patch_of_one_end_is_checked_against_the_stored_other(api, alice, project):
    client = api(alice)
    assert (
        client.patch(
            f"/api/v1/projects/{project.id}/",
            {"min_annotators": 2, "max_annotators": 2},
            format="json",
        ).status_code
        == 200
    )
    refused = client.patch(f"/api/v1/projects/{project.id}/", {"min_annotators": 3}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "min_annotators"
    widened = client.patch(
        f"/api/v1/projects/{project.id}/", {"confidence_threshold": None}, format="json"
    )
    assert widened.status_code == 200 and widened.json()["confidence_threshold"] is None


def _submit_queries(api, project, voters) -> list[int]:
    """Queries of each voter's submit on the project's one item, votes alternating A, B, A."""
    captured = []
    for index, voter in enumerate(voters):
        client = api(voter)
        body = client.get(f"/api/v1/projects/{project.id}/next/").json()
        r = [x["id"] for x in body["item"]["responses"]]
        chosen = index % 2
        with CaptureQueriesContext(connection) as submitted:
            response = client.post(
                f"/api/v1/assignments/{body['id']}/submit/",
                {
                    "answers": [
                        {"question": "preference", "chosen": r[chosen], "rejected": r[1 - chosen]}
                    ]
                },
                format="json",
            )
        assert response.status_code == 201
        captured.append(len(submitted))
    return captured


def test_an_adaptive_submit_costs_a_fixed_number_of_extra_queries(api, alice):
    fixed = Project.objects.create(name="fixed", overlap=3, created_by=alice)
    question_create(project=fixed, kind="pairwise", name="preference")
    _import(fixed, "one")
    baseline = _submit_queries(api, fixed, _members(fixed, 3))
    adaptive = _adaptive_project(api, alice, [{"kind": "pairwise", "name": "preference"}])
    _import(adaptive, "one")
    voters = [
        Membership.objects.create(user=user, project=adaptive, role=Role.ANNOTATOR).user
        for user in UserFactory.create_batch(3)
    ]
    captured = _submit_queries(api, adaptive, voters)
    # Adaptive costs a submit no query more than on a fixed-overlap project: the item's lock
    # and its one read of the votes (which then also counts its annotations) are shared
    # with the quality summaries, and the raise when the third vote splits 2-1 goes out in
    # the UPDATE that stores the item's agreement. (It was 2, 2, 4 more: a second lock,
    # a count and a read of the pairwise votes, and an UPDATE of its own.)
    assert [a - b for a, b in zip(captured, baseline, strict=True)] == [0, 0, 0], (
        captured,
        baseline,
    )
    # And the split did ask for a fourth vote, through that shared UPDATE.
    item = Item.objects.get(project=adaptive)
    assert (item.overlap_extra, item.slots_taken, item.is_full) == (1, 3, False)
    assert item.agreement == pytest.approx(2 / 3)

"""Pinned query counts on the hot endpoints, so an N+1 cannot creep in unnoticed."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Assignment, Membership, Role
from annotation.services import annotation_submit
from tests.factories import UserFactory


def _answers(body):
    r = [x["id"] for x in body["item"]["responses"]]
    return [
        {"question": "preference", "chosen": r[0], "rejected": r[1], "strength": 1},
        {"question": "ranking", "ranking": r},
        {
            "question": "aspects",
            "ratings": [
                {"response": x, "aspect": a, "value": 3}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    ]


def test_next_and_submit_use_a_fixed_number_of_queries(project, items, bob, api):
    client = api(bob)
    client.get(f"/api/v1/projects/{project.id}/next/")  # warm: the first call sweeps leases
    with CaptureQueriesContext(connection) as resumed:
        body = client.get(f"/api/v1/projects/{project.id}/next/").json()
    with CaptureQueriesContext(connection) as submitted:
        response = client.post(
            f"/api/v1/assignments/{body['id']}/submit/",
            {"answers": _answers(body), "time_spent_ms": 4200},
            format="json",
            HTTP_IDEMPOTENCY_KEY="q-1",
        )
    assert response.status_code == 201
    assignment_id = body["id"]
    with CaptureQueriesContext(connection) as claimed:
        body = client.get(f"/api/v1/projects/{project.id}/next/").json()
    # Resume: token, membership, my live lease, its responses.
    assert len(resumed) <= 4, [q["sql"] for q in resumed]
    # Claim: token, membership, live lease?, then in one transaction the per-annotator lock
    # (Membership row) and live lease? again, candidates (locked), slot CAS, insert, then
    # responses; plus two savepoint pairs here (the test's transaction makes the claim's
    # own transaction a savepoint; in production that pair is BEGIN/COMMIT, unlogged).
    assert len(claimed) <= 13, [q["sql"] for q in claimed]
    # Submit: token, assignment, questions, responses, lock (the assignment and its item in
    # one statement), insert annotation, 3 answer tables, then read the item's human votes
    # (one statement for every answer table), store its agreement (a pairwise answer
    # came), one upsert per quality summary with rows (the item's first label pairs no
    # one: annotator counters and the time bucket only); update. (17 before the item's
    # lock joined the assignment's.)
    assert len(submitted) <= 16, [q["sql"] for q in submitted]
    # Answers are bulk-inserted per table, never one query per rating; so are the summaries.
    inserts = [q for q in submitted if q["sql"].startswith("INSERT")]
    assert len(inserts) == 4 + 2
    # A second annotator on the same item also moves the agreement sums and the annotator
    # pairs: one upsert more for each, whatever the number of units and ratings.
    second = UserFactory(username="second")
    Membership.objects.create(user=second, project=project, role=Role.ANNOTATOR)
    item = Assignment.objects.get(pk=assignment_id).item
    again = Assignment.objects.create(
        project=project,
        item=item,
        annotator=second,
        leased_until=timezone.now() + timedelta(hours=1),
    )
    responses = list(item.responses.order_by("position").values_list("id", flat=True))
    answers = _answers({"item": {"responses": [{"id": r} for r in responses]}})
    with CaptureQueriesContext(connection) as service:
        annotation_submit(assignment_id=again.id, user=second, answers=answers, time_spent_ms=900)
    # Assignment, questions, responses, lock (assignment and item), annotation, 3 answer
    # tables, votes, agreement, 4 summary upserts, update; a savepoint pair (the test holds
    # the transaction). (18 before.)
    assert len(service) <= 17, [q["sql"] for q in service]
    assert len([q for q in service if q["sql"].startswith("INSERT")]) == 4 + 4

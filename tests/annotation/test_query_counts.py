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


def _inserts(queries) -> int:
    """INSERTs, also those inside one statement's WITH queries."""
    return sum(q["sql"].count("INSERT INTO") for q in queries)


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
    # The test's transaction turns each of the service's own transactions into a
    # savepoint pair; in production that pair is BEGIN/COMMIT, which Django does not log.
    savepoints = 2
    if connection.vendor == "postgresql":
        # Token: none (cached). Resume and claim alike: membership (the view's project
        # look-up), the claim lock (advisory, per annotator and project), then one
        # statement that returns the live lease or leases the next item, with the item and
        # its responses. (Before issue 16: 4 to resume, 11 to claim.)
        assert len(resumed) == 3 + savepoints, [q["sql"] for q in resumed]
        assert len(claimed) == 3 + savepoints, [q["sql"] for q in claimed]
        assert not any("apitoken" in q["sql"] for q in [*resumed, *claimed])
        # Submit: the lock (the assignment and its item, with the project, the questions
        # and the item's responses read in the same statement); the annotation with its 3
        # answer tables, reading the item's other human votes in the same statement; then
        # every write after them in one statement: one upsert per quality summary with rows
        # (the item's first label pairs no one: annotator counters and the time bucket
        # only) and the assignment's update; the agreement (none yet with one vote) is as
        # stored, so not written. (13 before the reads were folded into the lock and the
        # writes into one statement each; 16 before issue 16.)
        assert len(submitted) == 3 + savepoints, [q["sql"] for q in submitted]
    else:
        # SQLite keeps the general path (no SKIP LOCKED, no advisory locks).
        assert len(resumed) <= 4, [q["sql"] for q in resumed]
        assert len(claimed) <= 13, [q["sql"] for q in claimed]
        assert len(submitted) <= 14, [q["sql"] for q in submitted]
    # Answers are bulk-inserted per table, never one row per rating; so are the summaries.
    assert _inserts(submitted) == 4 + 2
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
    # Lock (with questions and responses), annotation and 3 answer tables with the votes
    # read, then 4 summary upserts, the agreement (two votes now) and the assignment in one
    # statement; a savepoint pair (the test holds the transaction). (17 before the folds,
    # 18 before issue 16.)
    if connection.vendor == "postgresql":
        assert len(service) == 3 + 2, [q["sql"] for q in service]
    assert _inserts(service) == 4 + 4
    assert any("UPDATE annotation_item SET agreement" in q["sql"] for q in service)

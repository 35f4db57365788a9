"""Pinned query counts on the hot endpoints, so an N+1 cannot creep in unnoticed."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext


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
    with CaptureQueriesContext(connection) as claimed:
        body = client.get(f"/api/v1/projects/{project.id}/next/").json()
    # Resume: token, membership, my live lease, its responses.
    assert len(resumed) <= 4, [q["sql"] for q in resumed]
    # Claim: token, membership, live lease?, then in one transaction the per-annotator lock
    # (Membership row) and live lease? again, candidates (locked), slot CAS, insert, then
    # responses; plus two savepoint pairs here (the test's transaction makes the claim's
    # own transaction a savepoint; in production that pair is BEGIN/COMMIT, unlogged).
    assert len(claimed) <= 13, [q["sql"] for q in claimed]
    # Submit: token, assignment, questions, responses, lock, insert annotation, 3 answer tables,
    # then lock the item, read its human votes (one statement for every answer table),
    # store its agreement (a pairwise answer came), one upsert per quality summary with
    # rows: unit votes, annotator counters, time bucket (annotator pairs too when another
    # annotator labelled the item: one more); update.
    assert len(submitted) <= 18, [q["sql"] for q in submitted]
    # Answers are bulk-inserted per table, never one query per rating; so are the summaries.
    inserts = [q for q in submitted if q["sql"].startswith("INSERT")]
    assert len(inserts) == 4 + 3

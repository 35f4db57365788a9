"""Concurrent annotators on PostgreSQL: row locks, SKIP LOCKED and compare-and-set under real contention."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from annotation.models import Annotation, Assignment, Item, Membership, Project, Role
from annotation.services import question_create, token_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _project(items: int, overlap: int) -> tuple[Project, list]:
    owner = UserFactory(username="owner")
    project = Project.objects.create(name="concurrency", overlap=overlap, created_by=owner)
    question_create(project=project, kind="pairwise", name="preference")
    from annotation.services import items_import

    lines = [
        f'{{"external_id": "c{i}", "prompt": "Q{i}", "responses": ["A{i}", "B{i}"]}}'
        for i in range(items)
    ]
    items_import(project=project, lines=lines, fmt="native")
    return project, []


def _annotator_loop(
    project_id: int, raw_token: str, errors: list, counts: Counter, barrier: threading.Barrier
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_token}")
    try:
        barrier.wait()
        while True:
            response = client.get(f"/api/v1/projects/{project_id}/next/")
            if response.status_code == 204:
                return
            if response.status_code != 200:
                errors.append(("next", response.status_code, response.content))
                return
            body = response.json()
            r = [x["id"] for x in body["item"]["responses"]]
            submit = client.post(
                f"/api/v1/assignments/{body['id']}/submit/",
                {
                    "answers": [
                        {"question": "preference", "chosen": r[0], "rejected": r[1], "strength": 1}
                    ]
                },
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"{raw_token[:8]}-{body['id']}",
            )
            if submit.status_code != 201:
                errors.append(("submit", submit.status_code, submit.content))
                return
            counts[raw_token] += 1
    except Exception as exc:  # surfaced by the assertion below
        errors.append(("exception", repr(exc)))
    finally:
        connections.close_all()


def test_eight_concurrent_annotators_give_every_item_exactly_overlap_annotations():
    assert connection.vendor == "postgresql"
    project, _ = _project(items=500, overlap=3)
    tokens = []
    for index in range(8):
        user = UserFactory(username=f"worker{index}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        tokens.append(token_create(user=user)[1])
    errors: list = []
    counts: Counter = Counter()
    barrier = threading.Barrier(len(tokens))
    threads = [
        threading.Thread(target=_annotator_loop, args=(project.id, t, errors, counts, barrier))
        for t in tokens
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
    assert sum(counts.values()) == 1500
    per_item = Counter(Annotation.objects.filter(project=project).values_list("item_id", flat=True))
    assert len(per_item) == 500 and set(per_item.values()) == {3}
    distinct = (
        Annotation.objects.filter(project=project)
        .values("item_id", "annotator_id")
        .distinct()
        .count()
    )
    assert distinct == 1500
    assert set(Item.objects.filter(project=project).values_list("slots_taken", flat=True)) == {3}
    # Work was shared: every annotator did some.
    assert len(counts) == 8


def test_racing_retries_with_one_key_store_one_annotation():
    project, _ = _project(items=1, overlap=1)
    user = UserFactory(username="racer")
    Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
    raw = token_create(user=user)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    body = client.get(f"/api/v1/projects/{project.id}/next/").json()
    r = [x["id"] for x in body["item"]["responses"]]
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        try:
            barrier.wait()
            response = c.post(
                f"/api/v1/assignments/{body['id']}/submit/",
                {"answers": [{"question": "preference", "chosen": r[0], "rejected": r[1]}]},
                format="json",
                HTTP_IDEMPOTENCY_KEY="same-key",
            )
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 5 + [201]
    assert Annotation.objects.filter(project=project).count() == 1
    assert Assignment.objects.get(pk=body["id"]).status == "submitted"

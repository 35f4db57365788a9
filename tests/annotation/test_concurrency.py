"""Concurrent annotators on PostgreSQL: row locks, SKIP LOCKED and compare-and-set under real contention."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from django.test import Client
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


@pytest.mark.slow
def test_eight_concurrent_annotators_give_every_item_exactly_overlap_annotations():
    assert connection.vendor == "postgresql"
    # 120 items: enough that all eight race for the same rows again and again (each
    # claim and each submit contends), small enough to stay a few seconds.
    project, _ = _project(items=120, overlap=3)
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
    assert sum(counts.values()) == 360
    per_item = Counter(Annotation.objects.filter(project=project).values_list("item_id", flat=True))
    assert len(per_item) == 120 and set(per_item.values()) == {3}
    distinct = (
        Annotation.objects.filter(project=project)
        .values("item_id", "annotator_id")
        .distinct()
        .count()
    )
    assert distinct == 360
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


def _concurrently(count: int, action) -> list:
    """Run ``action(index)`` in ``count`` threads released together; each has its own connection."""
    results: list = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results.append(action(index))
        except Exception as exc:  # surfaced by the caller's assertions
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _live_leases(project: Project, user) -> set[int]:
    return set(
        Assignment.objects.filter(project=project, annotator=user, status="active").values_list(
            "id", flat=True
        )
    )


def _annotators(project: Project, *names: str):
    users = []
    for name in names:
        user = UserFactory(username=name)
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        users.append(user)
    return users


def test_sixteen_concurrent_api_next_calls_with_one_token_lease_one_item():
    project, _ = _project(items=30, overlap=1)
    hoarder, other = _annotators(project, "hoarder", "other")
    raw = token_create(user=hoarder)[1]

    def next_item(_: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        response = client.get(f"/api/v1/projects/{project.id}/next/")
        return response.status_code, response.json()["id"]

    results = _concurrently(16, next_item)
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    assert len({assignment_id for _, assignment_id in results}) == 1
    assert len(_live_leases(project, hoarder)) == 1
    # The other 29 items are still there for someone else.
    client = APIClient()
    client.force_authenticate(other)
    assert client.get(f"/api/v1/projects/{project.id}/next/").status_code == 200


def test_on_an_overlap_one_project_a_racing_annotator_leaves_the_rest_for_others():
    project, _ = _project(items=2, overlap=1)
    hoarder, other = _annotators(project, "hoarder", "other")
    raw = token_create(user=hoarder)[1]

    def next_item(_: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        return client.get(f"/api/v1/projects/{project.id}/next/").status_code

    assert _concurrently(16, next_item) == [200] * 16
    client = APIClient()
    client.force_authenticate(other)
    assert client.get(f"/api/v1/projects/{project.id}/next/").status_code == 200


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_sixteen_concurrent_label_next_calls_in_one_session_lease_one_item():
    project, _ = _project(items=30, overlap=1)
    (annotator,) = _annotators(project, "tabs")
    session = _session_cookie(annotator)

    def next_item(_: int):
        client = Client()
        client.cookies["sessionid"] = session
        response = client.get(f"/projects/{project.id}/label/next/")
        return response.status_code, response.json()["next"]["id"]

    results = _concurrently(16, next_item)
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    assert len({assignment_id for _, assignment_id in results}) == 1
    assert len(_live_leases(project, annotator)) == 1


def test_concurrent_lease_ahead_and_next_never_hold_more_than_two_leases():
    project, _ = _project(items=30, overlap=1)
    (annotator,) = _annotators(project, "ahead")
    session = _session_cookie(annotator)
    first = Client()
    first.cookies["sessionid"] = session
    current = first.get(f"/projects/{project.id}/label/next/").json()["next"]["id"]

    def ahead_or_next(index: int) -> int:
        client = Client()
        client.cookies["sessionid"] = session
        if index % 2:
            return client.post(f"/projects/{project.id}/label/{current}/ahead/").status_code
        return client.get(f"/projects/{project.id}/label/next/").status_code

    assert _concurrently(16, ahead_or_next) == [200] * 16
    leases = _live_leases(project, annotator)
    assert len(leases) == 2 and current in leases


def test_an_item_held_for_a_moment_by_a_submit_is_still_served_to_the_next_annotator():
    """SKIP LOCKED passes over a row another transaction holds. When that row is the last one
    with a slot for this annotator (a submit on it is committing), the claim must wait for
    it, not answer that nothing is left (seen as a missing vote in the test above)."""
    from annotation.services import assignment_claim_next

    project, _ = _project(items=1, overlap=2)
    item = Item.objects.get(project=project)
    annotator = UserFactory(username="next-in-line")
    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    locked, release = threading.Event(), threading.Event()

    def hold_the_item() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                Item.objects.select_for_update(no_key=True).get(pk=item.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_item)
    holder.start()
    assert locked.wait(timeout=30)
    threading.Timer(0.5, release.set).start()
    assignment = assignment_claim_next(project=project, annotator=annotator)
    holder.join(timeout=30)
    assert assignment is not None and assignment.item_id == item.pk

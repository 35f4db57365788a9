"""``POST …/submit/?next=1``: the answer and the next leased item in one round trip."""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

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


def _writer(table: str, pk: int) -> str:
    # The id of the transaction that last wrote the row (PostgreSQL's xmin).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_answer_and_the_next_lease_commit_together_unless_a_sweep_is_due(alice, bob, api):
    from annotation.models import Role
    from annotation.services import assignments
    from tests.factories import MembershipFactory, make_questions

    project = ProjectFactory(name="One commit per item", created_by=alice, overlap=1)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(project, [{"kind": "pairwise", "name": "preference"}])
    for _ in range(3):
        ItemFactory(project=project, responses=["First answer.", "Second answer."])
    client = api(bob)
    assignments._last_sweep.pop(project.id, None)
    first = client.get(f"/api/v1/projects/{project.id}/next/").json()  # sweeps, so none is due
    response = client.post(
        f"/api/v1/assignments/{first['id']}/submit/?next=1", _answer(first), format="json"
    )
    assert response.status_code == 201, response.content
    second = response.json()["next"]
    table = Assignment._meta.db_table
    # One transaction wrote the submitted assignment and leased the next: one commit.
    assert _writer(table, first["id"]) == _writer(table, second["id"])
    assert Assignment.objects.get(pk=first["id"]).status == AssignmentStatus.SUBMITTED

    # With a sweep of expired leases due, the claim runs after the submit's commit.
    assignments._last_sweep.pop(project.id, None)
    response = client.post(
        f"/api/v1/assignments/{second['id']}/submit/?next=1", _answer(second), format="json"
    )
    assert response.status_code == 201, response.content
    third = response.json()["next"]
    assert third["item"]["id"] not in {first["item"]["id"], second["item"]["id"]}
    assert _writer(table, second["id"]) != _writer(table, third["id"])
    assert project.id in assignments._last_sweep
    assert Annotation.objects.filter(annotator=bob).count() == 2


def _three_items(alice, *annotators, name: str):
    from annotation.models import Role
    from tests.factories import MembershipFactory, make_questions

    project = ProjectFactory(name=name, created_by=alice, overlap=1)
    for user in annotators:
        MembershipFactory(user=user, project=project, role=Role.ANNOTATOR)
    make_questions(project, [{"kind": "pairwise", "name": "preference"}])
    for _ in range(3):
        ItemFactory(project=project, responses=["First answer.", "Second answer."])
    return project


class OtherTab(threading.Thread):
    """The annotator's other request, on a connection of its own: takes ``first`` (a lock),
    waits until this test's connection waits for a lock (``waits_on``: the wait event),
    then runs ``then``, which waits for a lock this test's connection holds. PostgreSQL
    sees the cycle; this side checks for deadlocks after 20 s, the test's side after the
    default 1 s, so the test's transaction is the one rolled back."""

    def __init__(self, first: tuple[str, list], waits_on: str, then: tuple[str, list]) -> None:
        super().__init__()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.blocked_pid = cursor.fetchone()[0]
        self.first, self.waits_on, self.then = first, waits_on, then
        self.holding, self.outcome = threading.Event(), ""

    def run(self) -> None:
        from django.db import connections, transaction

        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '20s'")
                cursor.execute(*self.first)
                self.holding.set()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    cursor.execute(
                        "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s",
                        [self.blocked_pid],
                    )
                    if self.waits_on in cursor.fetchone():
                        break
                    time.sleep(0.02)
                else:
                    self.outcome = f"the other side never waited ({self.waits_on})"
                    return
                cursor.execute(*self.then)
                self.outcome = "done"
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            self.outcome = repr(exc)
        finally:
            connections.close_all()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deadlock_with_the_annotators_other_request_falls_back_to_separate_steps(alice, bob):
    """The cycle: this submit holds its item and waits for the annotator's claim lock, which
    their other request holds while it waits for that item (a sweep freeing a slot on it)."""
    from annotation.services import (
        annotation_submit_and_claim_next,
        assignment_claim_next,
        assignments,
    )

    project = _three_items(alice, bob, name="Two tabs")
    first = assignment_claim_next(project=project, annotator=bob)
    responses = sorted(r.id for r in first.item.responses.all())
    assignments._last_sweep[project.id] = timezone.now()  # no sweep due: the quick claim runs
    key = assignments.CLAIM_LOCK_KEY_SPACE
    other = OtherTab(
        first=("SELECT pg_advisory_xact_lock(%s, %s)", [project.pk % key, bob.pk % key]),
        waits_on="advisory",
        then=(
            "UPDATE annotation_item SET slots_taken = slots_taken WHERE id = %s",
            [first.item_id],
        ),
    )
    other.start()
    assert other.holding.wait(20)
    annotation, created, following = annotation_submit_and_claim_next(
        assignment_id=first.pk,
        user=bob,
        answers=[{"question": "preference", "chosen": responses[0], "rejected": responses[1]}],
    )
    other.join(30)
    assert other.outcome == "done"
    assert created and annotation.assignment_id == first.pk
    assert following is not None and following.item_id != first.item_id
    assert Annotation.objects.filter(annotator=bob).count() == 1
    assert Assignment.objects.get(pk=first.pk).status == AssignmentStatus.SUBMITTED
    assert Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_rolled_back_by_a_deadlock_claims_again_in_a_new_transaction(alice, bob):
    """The same cycle seen from the claim: its sweep waits on an item that the annotator's
    other request holds while that request waits for the claim lock this claim holds."""
    from datetime import timedelta

    from annotation.services import assignment_claim_next, assignments
    from tests.factories import UserFactory

    carol = UserFactory(username="carol")
    project = _three_items(alice, bob, carol, name="Two tabs, the claim's side")
    stale = assignment_claim_next(project=project, annotator=carol)
    Assignment.objects.filter(pk=stale.pk).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    assignments._last_sweep.pop(project.id, None)  # bob's claim sweeps, and frees that slot
    key = assignments.CLAIM_LOCK_KEY_SPACE
    other = OtherTab(
        first=("SELECT 1 FROM annotation_item WHERE id = %s FOR NO KEY UPDATE", [stale.item_id]),
        waits_on="Lock",
        then=("SELECT pg_advisory_xact_lock(%s, %s)", [project.pk % key, bob.pk % key]),
    )
    other.start()
    assert other.holding.wait(20)
    claimed = assignment_claim_next(project=project, annotator=bob)
    other.join(30)
    assert other.outcome == "done"
    assert claimed is not None and claimed.status == AssignmentStatus.ACTIVE
    assert Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).count() == 1
    assert Assignment.objects.get(pk=stale.pk).status == AssignmentStatus.EXPIRED

"""The queue: overlap, no repeats, leases, skips, gold rate, priority."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Item, Membership
from annotation.services import assignment_claim_next, assignment_skip
from tests.factories import ItemFactory, UserFactory


def _annotators(project, n):
    users = [UserFactory(username=f"ann{i}") for i in range(n)]
    for user in users:
        Membership.objects.create(user=user, project=project, role="annotator")
    return users


def _drain(project, user, now=None):
    """Claim and complete (mark submitted) until the queue is empty for ``user``."""
    seen = []
    while (a := assignment_claim_next(project=project, annotator=user, now=now)) is not None:
        seen.append(a.item_id)
        Assignment.objects.filter(pk=a.pk).update(status=AssignmentStatus.SUBMITTED)
    return seen


def test_it_never_assigns_an_item_twice_to_one_annotator(project, items, bob):
    seen = _drain(project, bob)
    assert sorted(seen) == sorted(i.id for i in items)


def test_an_item_never_exceeds_the_overlap(project):
    project.overlap = 2
    project.save()
    items = [ItemFactory(project=project) for _ in range(3)]
    users = _annotators(project, 4)
    got = {u.username: _drain(project, u) for u in users}
    assert [len(v) for v in got.values()] == [3, 3, 0, 0]
    for item in items:
        assert Assignment.objects.filter(item=item).count() == 2


def test_a_live_lease_is_returned_again_instead_of_a_new_item(project, items, bob):
    first = assignment_claim_next(project=project, annotator=bob)
    assert assignment_claim_next(project=project, annotator=bob).id == first.id
    assert Assignment.objects.filter(annotator=bob).count() == 1


def test_expired_leases_return_items_to_the_pool(project, bob, alice):
    item = ItemFactory(project=project)
    first = assignment_claim_next(project=project, annotator=bob)
    assert first.item_id == item.id
    assert assignment_claim_next(project=project, annotator=alice) is None
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    again = assignment_claim_next(project=project, annotator=alice, now=later)
    assert again is not None and again.item_id == item.id
    first.refresh_from_db()
    assert first.status == AssignmentStatus.EXPIRED


def test_a_skip_is_recorded_and_frees_the_slot_for_others(project, bob, alice):
    item = ItemFactory(project=project)
    assignment = assignment_claim_next(project=project, annotator=bob)
    skipped = assignment_skip(assignment=assignment)
    assert skipped.status == AssignmentStatus.SKIPPED
    assert assignment_claim_next(project=project, annotator=bob) is None
    assert assignment_claim_next(project=project, annotator=alice).item_id == item.id


def test_gold_items_are_mixed_in_at_the_project_rate(project, bob):
    project.gold_rate = 0.2
    project.save()
    for _ in range(40):
        ItemFactory(project=project)
    for _ in range(20):
        ItemFactory(project=project, is_gold=True)
    seen = _drain(project, bob)
    gold = Item.objects.filter(id__in=seen, is_gold=True).count()
    regular = len(seen) - gold
    assert regular == 40
    # Exactly tracks the rate while regular items last: gold / total ≈ 0.2.
    assert gold == pytest.approx(0.2 * len(seen), abs=1.5)


def test_gold_items_ignore_overlap(project):
    project.gold_rate = 1.0
    project.save()
    gold = ItemFactory(project=project, is_gold=True)
    users = _annotators(project, 3)
    for user in users:
        assert assignment_claim_next(project=project, annotator=user).item_id == gold.id


def test_priority_orders_the_pool(project, bob):
    low = ItemFactory(project=project)
    high = ItemFactory(project=project)
    Item.objects.filter(pk=high.pk).update(priority=5.0)
    assert _drain(project, bob) == [high.id, low.id]


def test_next_api_returns_204_when_the_queue_is_empty(project, bob, api):
    assert api(bob).get(f"/api/v1/projects/{project.id}/next/").status_code == 204


def test_next_api_hides_model_names_from_annotators(project, items, bob, api):
    body = api(bob).get(f"/api/v1/projects/{project.id}/next/").json()
    assert "model" not in body["item"]["responses"][0]

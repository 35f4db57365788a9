"""Items wanting more annotators: curator requests (request_more_votes) and the queue order."""

from __future__ import annotations

import pytest

from annotation.errors import ValidationFailed
from annotation.models import Assignment, AssignmentStatus, Item, Membership
from annotation.services import assignment_claim_next, request_more_votes
from tests.factories import ItemFactory, UserFactory


def _annotators(project, n):
    users = [UserFactory(username=f"ann{i}") for i in range(n)]
    for user in users:
        Membership.objects.create(user=user, project=project, role="annotator")
    return users


def _claim_and_submit(project, user):
    assignment = assignment_claim_next(project=project, annotator=user)
    if assignment is not None:
        Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED)
    return assignment


def test_request_more_votes_reopens_a_full_item_for_one_more_annotator(project):
    project.overlap = 1
    project.save()
    item = ItemFactory(project=project)
    first, second, third = _annotators(project, 3)
    assert _claim_and_submit(project, first).item_id == item.id
    assert _claim_and_submit(project, second) is None
    assert request_more_votes([item.id], votes=1, priority=5.0) == 1
    item.refresh_from_db()
    assert (item.overlap_extra, item.is_full, item.priority) == (1, False, 5.0)
    assert _claim_and_submit(project, second).item_id == item.id
    # One more, not more than that.
    assert _claim_and_submit(project, third) is None
    item.refresh_from_db()
    assert (item.slots_taken, item.is_full) == (2, True)


def test_request_more_votes_counts_from_the_votes_already_in_or_leased(project):
    project.overlap = 1
    project.save()
    item = ItemFactory(project=project)
    Item.objects.filter(pk=item.pk).update(slots_taken=3, is_full=True)
    request_more_votes([item.id], votes=2)
    item.refresh_from_db()
    assert (item.overlap_extra, item.is_full) == (4, False)


def test_request_more_votes_never_lowers_priority_and_leaves_gold_alone(project):
    item = ItemFactory(project=project, priority=9.0)
    gold = ItemFactory(project=project, is_gold=True)
    assert request_more_votes([item.id, gold.id], priority=1.0) == 1
    item.refresh_from_db()
    gold.refresh_from_db()
    assert item.priority == 9.0
    assert gold.overlap_extra == 0


def test_request_more_votes_is_capped(project):
    item = ItemFactory(project=project)
    request_more_votes([item.id], votes=100)
    request_more_votes([item.id], votes=100)
    item.refresh_from_db()
    assert project.overlap + item.overlap_extra == 100


@pytest.mark.parametrize("votes", [0, 101, "2", True])
def test_request_more_votes_refuses_a_bad_count(project, votes):
    with pytest.raises(ValidationFailed) as caught:
        request_more_votes([1], votes=votes)
    assert caught.value.field == "votes"


def test_items_asking_for_more_votes_are_served_before_fresh_ones(project):
    project.overlap = 1
    project.save()
    fresh_high = ItemFactory(project=project, priority=10.0)
    reopened = ItemFactory(project=project)
    fresh_low = ItemFactory(project=project)
    first, second = _annotators(project, 2)
    # The first annotator labels the lower-priority item, which then asks for another vote.
    Item.objects.filter(pk=fresh_high.pk).update(priority=-1.0)
    assert _claim_and_submit(project, first).item_id == reopened.id
    Item.objects.filter(pk=fresh_high.pk).update(priority=10.0)
    request_more_votes([reopened.id])
    order = [_claim_and_submit(project, second).item_id for _ in range(3)]
    assert order == [reopened.id, fresh_high.id, fresh_low.id]


def test_reopened_items_come_first_among_regular_items_and_gold_keeps_its_rate(project):
    project.overlap = 1
    project.gold_rate = 0.25
    project.save()
    regular = [ItemFactory(project=project) for _ in range(6)]
    gold = [ItemFactory(project=project, is_gold=True) for _ in range(4)]
    first, second = _annotators(project, 2)
    # The first annotator labels the three last items (raised for the moment).
    Item.objects.filter(pk__in=[item.id for item in regular[3:]]).update(priority=1.0)
    for _ in range(3):
        _claim_and_submit(project, first)
    Item.objects.filter(project=project).update(priority=0.0)
    reopened = [regular[4].id, regular[5].id]
    request_more_votes(reopened)
    order = [_claim_and_submit(project, second).item_id for _ in range(6)]
    regular_order = [item_id for item_id in order if item_id not in {g.id for g in gold}]
    # Served before the fresh ones, in their own id order.
    assert regular_order[:2] == reopened
    # Every fourth item served is gold, as before.
    assert [item_id in {g.id for g in gold} for item_id in order] == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]

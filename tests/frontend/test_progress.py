"""What the home page and the labeling page say is left: everything the annotator can still label."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotation.models import Assignment, AssignmentStatus
from annotation.services import annotation_submit, assignment_claim_next, assignment_skip
from frontend.queue import assignment_lease_ahead
from tests.factories import ItemFactory
from tests.frontend.test_views import answers_for

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def boot_of(html: str) -> dict:
    return json.loads(
        html.split('id="ballot-boot" type="application/json">')[1].split("</script>")[0]
    )


@pytest.fixture
def thirty(project):
    project.overlap = 1
    project.save()
    return [ItemFactory(project=project, responses=["One.", "Two.", "Three."]) for _ in range(30)]


def label_some(project, user, *, submitted: int, skipped: int) -> Assignment:
    """Submit and skip as the labeling page does, then hold one item on screen and one ahead."""
    for _ in range(submitted):
        assignment = assignment_claim_next(project=project, annotator=user)
        annotation_submit(assignment_id=assignment.id, user=user, answers=answers_for(assignment))
    for _ in range(skipped):
        assignment_skip(assignment=assignment_claim_next(project=project, annotator=user))
    on_screen = assignment_claim_next(project=project, annotator=user)
    assert assignment_lease_ahead(project=project, annotator=user, current_id=on_screen.id)
    return on_screen


def test_remaining_counts_the_item_on_screen_and_the_one_leased_ahead(project, thirty, bob):
    label_some(project, bob, submitted=3, skipped=1)
    assert Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).count() == 2
    page = signed_in(bob).get("/").content.decode()
    assert 'data-stat="done">3<' in page
    assert 'data-stat="skipped">1<' in page
    assert 'data-stat="remaining">26<' in page


def test_remaining_leaves_out_items_leased_to_someone_else(project, thirty, bob, alice):
    assignment_claim_next(project=project, annotator=alice)
    page = signed_in(bob).get("/").content.decode()
    assert 'data-stat="remaining">29<' in page


def test_the_labeling_page_says_which_item_of_how_many_is_on_screen(project, thirty, bob):
    on_screen = label_some(project, bob, submitted=3, skipped=1)
    client = signed_in(bob)
    boot = boot_of(client.get(f"/projects/{project.id}/label/").content.decode())
    assert boot["assignment"]["id"] == on_screen.id
    assert boot["assignment"]["progress"] == {"position": 5, "total": 30}
    response = client.post(
        f"/projects/{project.id}/label/{on_screen.id}/submit/",
        json.dumps({"answers": answers_for(on_screen)}),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["next"]["progress"] == {"position": 6, "total": 30}

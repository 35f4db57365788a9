"""One naming rule: curators see annotators' pseudonyms everywhere; project admins also see usernames."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Membership, Role
from annotation.pseudonyms import pseudonym
from annotation.services import annotation_submit, assignment_claim_next, profile_update
from tests.factories import UserFactory
from tests.frontend.test_views import answers_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dora(project):
    """A curator of the project."""
    user = UserFactory(username="dora")
    Membership.objects.create(user=user, project=project, role=Role.CURATOR)
    return user


@pytest.fixture
def root(db):
    """A superuser who is no member of the project: acts as its admin."""
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def annotated(project, items, bob):
    """Bob (username "bob") has submitted one annotation; returns its item."""
    profile_update(user=bob, consent=True, age_band="25-34")
    assignment = assignment_claim_next(project=project, annotator=bob)
    annotation_submit(assignment_id=assignment.id, user=bob, answers=answers_for(assignment))
    return assignment.item


def api_get(api, user, url: str) -> dict | list:
    response = api(user).get(url)
    assert response.status_code == 200, response.content
    return response.json()


def views_of(api, user, project, item) -> dict[str, list[dict]]:
    """Every API place that names annotators, as rows that each name one annotator."""
    base = f"/api/v1/projects/{project.id}"
    return {
        "item annotations": api_get(api, user, f"{base}/items/{item.id}/annotations/"),
        "annotation list": api_get(api, user, f"{base}/annotations/")["results"],
        "profiles": [
            row
            for row in api_get(api, user, f"{base}/profiles/")["results"]
            if row["age_band"] == "25-34"
        ],
        "quality": api_get(api, user, f"{base}/quality/")["annotators"],
    }


def test_curators_see_the_same_pseudonym_everywhere_in_the_api_and_never_a_username(
    api, project, annotated, bob, dora
):
    expected = pseudonym(bob.id, str(project.id))
    for place, rows in views_of(api, dora, project, annotated).items():
        assert [row["annotator"] for row in rows] == [expected], place
        assert all("username" not in row for row in rows), place
        assert "'bob'" not in repr(rows), place


@pytest.mark.parametrize("who", ["alice", "root"])
def test_project_admins_and_superusers_also_see_the_username(
    api, project, annotated, bob, alice, root, who
):
    user = {"alice": alice, "root": root}[who]
    expected = pseudonym(bob.id, str(project.id))
    for place, rows in views_of(api, user, project, annotated).items():
        assert [(row["annotator"], row["username"]) for row in rows] == [(expected, "bob")], place


def test_the_curator_item_page_names_annotators_by_pseudonym(project, annotated, bob, dora):
    client = Client()
    client.force_login(dora)
    page = client.get(f"/projects/{project.id}/items/{annotated.id}/").content.decode()
    assert f'<strong class="annotator-name">{pseudonym(bob.id, str(project.id))}</strong>' in page
    assert "annotator-username" not in page
    assert ">bob<" not in page and "(bob)" not in page


def test_the_admin_item_page_shows_the_username_next_to_the_pseudonym(
    project, annotated, bob, alice
):
    client = Client()
    client.force_login(alice)
    page = client.get(f"/projects/{project.id}/items/{annotated.id}/").content.decode()
    assert f'<strong class="annotator-name">{pseudonym(bob.id, str(project.id))}</strong>' in page
    assert '<span class="annotator-username">(bob)</span>' in page


def test_pseudonyms_differ_between_projects(bob):
    assert pseudonym(bob.id, "1") != pseudonym(bob.id, "2")

"""The members list follows the one pseudonym rule: admins see usernames, curators pseudonyms,
annotators only their own membership."""

from __future__ import annotations

import pytest

from annotation.models import Role
from annotation.pseudonyms import pseudonym
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol(project):
    carol = UserFactory(username="carol")
    MembershipFactory(user=carol, project=project, role=Role.CURATOR)
    return carol


def members(api, user, project) -> list[dict]:
    response = api(user).get(f"/api/v1/projects/{project.id}/memberships/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_an_admin_sees_every_member_by_username_and_pseudonym(api, project, alice, bob, carol):
    rows = {row["username"]: row for row in members(api, alice, project)}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["bob"]["pseudonym"] == pseudonym(bob.id, str(project.id))


def test_a_curator_sees_pseudonyms_and_only_their_own_username(api, project, bob, carol):
    rows = members(api, carol, project)
    assert len(rows) == 3
    assert {row["username"] for row in rows} == {"carol", None}
    assert pseudonym(bob.id, str(project.id)) in {row["pseudonym"] for row in rows}


def test_an_annotator_sees_only_their_own_membership(api, project, bob, carol):
    rows = members(api, bob, project)
    assert [(row["username"], row["role"]) for row in rows] == [("bob", "annotator")]

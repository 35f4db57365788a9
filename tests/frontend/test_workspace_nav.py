"""The workspace navigation offers each reader the sections they may open."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def nav_links(user, project) -> list[str]:
    client = Client()
    client.force_login(user)
    response = client.get(f"/projects/{project.id}/quality/")
    assert response.status_code == 200
    nav = response.content.decode().split('class="workspace-nav"', 1)[1].split("</nav>", 1)[0]
    return [part.split('"', 1)[0] for part in nav.split('href="')[1:]]


def test_admins_are_offered_set_up_and_curators_are_not(project, alice):
    curator = UserFactory(username="carol")
    MembershipFactory(user=curator, project=project, role=Role.CURATOR)
    admin_links = nav_links(alice, project)
    curator_links = nav_links(curator, project)
    settings_url = f"/projects/{project.id}/settings/"
    assert settings_url in admin_links
    assert settings_url not in curator_links
    assert set(curator_links) == set(admin_links) - {settings_url}
    for url in curator_links:
        client = Client()
        client.force_login(curator)
        assert client.get(url).status_code == 200, url

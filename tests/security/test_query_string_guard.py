"""A NUL character in any query parameter is a 400 naming it, on the API and on pages."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/projects/{project}/explore/?tag=a%00b", "tag"),
        ("/api/v1/projects/{project}/items/?q=x&search=%00", "search"),
        ("/api/v1/projects/?cursor=%00", "cursor"),
    ],
)
def test_a_nul_in_an_api_query_parameter_is_a_400_naming_it(api, alice, project, path, field):
    response = api(alice).get(path.format(project=project.id))
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "invalid"
    assert body["field"] == field


def test_a_nul_in_a_parameter_name_is_refused_too(api, alice):
    response = api(alice).get("/api/v1/projects/?a%00b=1")
    assert response.status_code == 400
    assert response.json()["field"] == "a\\u0000b"


def test_a_nul_in_a_page_query_is_the_styled_400_page(alice, project):
    client = Client()
    client.force_login(alice)
    response = client.get(f"/projects/{project.id}/items/?q=%00")
    assert response.status_code == 400
    assert '<a class="brand" href="/">' in response.content.decode()


def test_a_question_cannot_be_renamed_to_nothing(api, alice, project):
    question = project.questions.first()
    for name in ("~", "", "   "):
        response = api(alice).patch(
            f"/api/v1/projects/{project.id}/questions/{question.id}/", {"name": name}, format="json"
        )
        assert response.status_code == 400, (name, response.content)
        assert response.json()["field"] == "name"
    question.refresh_from_db()
    assert question.name

"""The explanations pages without a browser: who may open them, the empty state, the job's
page linking to its explanation, and the actions' bad input shown on the page."""

from __future__ import annotations

import pytest
from django.test import Client

from curation.models import ReviewEntry
from tests.explanation_world import store_explanation

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def explained(project, settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    return store_explanation(project)


def test_the_pages_open_for_staff_only(project, alice, bob, charlie, explained):
    pages = (
        f"/projects/{project.id}/explanations/",
        f"/projects/{project.id}/explanations/{explained.id}/features/0/",
    )
    for url in pages:
        assert client_for(alice).get(url).status_code == 200
        assert client_for(bob).get(url).status_code == 403
        assert client_for(charlie).get(url).status_code == 404
    assert Client().get(pages[0]).status_code == 302  # to the login page
    missing = f"/projects/{project.id}/explanations/{explained.id}/features/9/"
    assert client_for(alice).get(missing).status_code == 404
    other = f"/projects/{project.id}/explanations/?job={explained.id + 1000}"
    assert client_for(alice).get(other).status_code == 404


def test_without_an_explanation_the_page_says_so(project, alice):
    response = client_for(alice).get(f"/projects/{project.id}/explanations/")
    assert response.status_code == 200
    assert "No explanation job has finished" in response.content.decode()


def test_the_job_page_links_to_its_explanation(project, alice, explained):
    explained.result = {"features": 3, "pairs": 24, "judgements": 48, "significant": 1}
    explained.save(update_fields=["result"])
    page = client_for(alice).get(f"/projects/{project.id}/jobs/{explained.id}/").content.decode()
    assert f"/projects/{project.id}/explanations/?job={explained.id}" in page


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"top": "", "threshold": ""}, "top"),
        ({"top": "x"}, "top"),
        ({"threshold": "-2"}, "threshold"),
    ],
)
def test_bad_action_input_is_shown_on_the_page_naming_the_field(
    project, alice, explained, form, field
):
    url = f"/projects/{project.id}/explanations/{explained.id}/features/0/review/"
    response = client_for(alice).post(url, form)
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in response.content.decode()
    assert not ReviewEntry.objects.exists()
    export = f"/projects/{project.id}/explanations/{explained.id}/features/0/export/"
    response = client_for(alice).post(export, form)
    assert response.status_code == 400
    assert f'data-error-for="params.explanation_{field}"' in response.content.decode()


def test_the_jobs_page_offers_an_explain_launch_form_built_from_the_registry(project, alice):
    page = client_for(alice).get(f"/projects/{project.id}/jobs/").content.decode()
    assert 'id="launch-explain"' in page
    assert 'name="n_features"' in page and 'name="k_active"' in page

"""The explorer page (/projects/{id}/items/), its bulk-action confirmation and its API."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.test import Client

from annotation.models import Item, Role
from annotation.services import items_import
from curation.models import ReviewEntry
from tests.api_mixins import ScopedEndpointTests, World
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana(project):
    """A curator of the project."""
    user = UserFactory(username="dana")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


@pytest.fixture
def imported(project):
    """60 items: every third tagged "math", prompts numbered, one mentioning a violin."""
    lines = [
        json.dumps(
            {
                "external_id": f"x-{n}",
                "prompt": f"Prompt number {n} about {'a violin' if n == 7 else 'the weather'}",
                "responses": [f"First reply {n}", f"Second reply {n}"],
                "tags": ["math"] if n % 3 == 0 else [],
                "metadata": {"lang": "fr" if n % 2 else "en"},
            }
        )
        for n in range(60)
    ]
    items_import(project=project, lines=lines, fmt="native")
    return dict(Item.objects.filter(project=project).values_list("external_id", "id"))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-item="(\d+)"', html)]


def test_annotators_get_403_outsiders_404_and_anonymous_a_sign_in(project, bob, charlie):
    url = f"/projects/{project.id}/items/"
    assert client_for(bob).get(url).status_code == 403
    assert client_for(charlie).get(url).status_code == 404
    assert Client().get(url).status_code == 302
    bulk = f"/projects/{project.id}/items/bulk/"
    assert client_for(bob).post(bulk, {"action": "exclude"}).status_code == 403
    assert client_for(charlie).post(bulk, {"action": "exclude"}).status_code == 404


def test_the_page_shows_readable_titles_and_pages_of_fifty(project, alice, dana, imported):
    for user in (alice, dana):
        html = client_for(user).get(f"/projects/{project.id}/items/").content.decode()
        assert "Prompt number 0 about the weather" in html
        assert len(row_ids(html)) == 50
        assert 'rel="next"' in html
    second = client_for(dana).get(f"/projects/{project.id}/items/?page=2").content.decode()
    assert row_ids(second) == sorted(imported.values())[50:]


def test_filters_and_sort_live_in_the_url_and_survive_paging(project, dana, imported):
    url = f"/projects/{project.id}/items/?tag=math&meta=lang%3Den&sort=-id"
    html = client_for(dana).get(url).content.decode()
    expected = sorted(
        (imported[f"x-{n}"] for n in range(60) if n % 3 == 0 and n % 2 == 0), reverse=True
    )
    assert row_ids(html) == expected
    assert 'value="math"' in html
    # The bulk form carries the filter, so "all matching" means this filter.
    assert '<input type="hidden" name="tag" value="math">' in html
    searched = client_for(dana).get(f"/projects/{project.id}/items/?q=violin").content.decode()
    assert row_ids(searched) == [imported["x-7"]]


def test_a_bad_filter_is_a_400_naming_it(project, dana, imported):
    response = client_for(dana).get(f"/projects/{project.id}/items/?agreement_min=7")
    assert response.status_code == 400
    assert 'data-error-for="agreement_min"' in response.content.decode()


def test_a_bulk_action_on_the_whole_filter_is_confirmed_with_its_count_then_applied(
    project, dana, imported
):
    client = client_for(dana)
    form = {"scope": "filter", "tag": "math", "action": "tag_add", "value": "checked"}
    confirm = client.post(f"/projects/{project.id}/items/bulk/", form)
    html = unescape(confirm.content.decode())
    assert confirm.status_code == 200
    assert "This will touch 20 items" in re.sub(r"<[^>]+>", "", html)
    assert not Item.objects.filter(tags__icontains="checked").exists()
    done = client.post(f"/projects/{project.id}/items/bulk/", {**form, "confirm": "1"})
    assert done.status_code == 302 and "tag=math" in done["Location"]
    tagged = {i.id for i in Item.objects.filter(project=project) if "checked" in i.tags}
    assert tagged == {imported[f"x-{n}"] for n in range(0, 60, 3)}


def test_a_bulk_action_on_selected_items_sends_them_to_review(project, dana, imported):
    chosen = [imported["x-1"], imported["x-2"]]
    form = {"scope": "selected", "item": chosen, "action": "review", "value": "odd labels"}
    client_for(dana).post(f"/projects/{project.id}/items/bulk/", {**form, "confirm": "1"})
    entries = ReviewEntry.objects.all()
    assert sorted(e.item_id for e in entries) == chosen
    assert {(e.reason, e.source, e.created_by_id) for e in entries} == {
        ("odd labels", "explorer", dana.id)
    }


def test_the_similar_page_says_when_there_are_no_embeddings(project, dana, imported):
    html = client_for(dana).get(f"/projects/{project.id}/items/{imported['x-3']}/similar/")
    assert html.status_code == 200
    assert "No embedding job has finished" in html.content.decode()


def test_the_explore_api_pages_and_filters_like_the_page(project, alice, api, imported):
    response = api(alice).get(
        f"/api/v1/projects/{project.id}/explore/", {"tag": "math", "page_size": 5, "page": 2}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 20 and body["pages"] == 4 and body["page"] == 2
    assert [r["id"] for r in body["results"]] == sorted(
        imported[f"x-{n}"] for n in range(0, 60, 3)
    )[5:10]
    assert body["results"][0]["title"].startswith("Prompt number 15")
    bad = api(alice).get(f"/api/v1/projects/{project.id}/explore/", {"gold": "perhaps"})
    assert bad.status_code == 400 and bad.json()["field"] == "gold"
    assert body["count_exact"] and body["has_next"]
    past = api(alice).get(
        f"/api/v1/projects/{project.id}/explore/", {"tag": "math", "page_size": 5, "page": 5}
    )
    assert past.status_code == 400 and past.json()["field"] == "page"


def test_a_large_match_is_counted_about_on_postgresql_and_exactly_below_the_limit(
    project, dana, imported, settings
):
    from django.db import connection

    settings.BALLOT_EXPLORER_EXACT_COUNT = 10
    html = client_for(dana).get(f"/projects/{project.id}/items/").content.decode()
    if connection.vendor == "postgresql":
        assert 'about <span id="explorer-count" data-exact="0">' in html
        assert re.search(r"Page 1 of about \d+", html)
    else:
        assert '<span id="explorer-count" data-exact="1">60</span>' in html
    assert len(row_ids(html)) == 50 and 'rel="next"' in html
    last = client_for(dana).get(f"/projects/{project.id}/items/?page=2").content.decode()
    assert row_ids(last) == sorted(imported.values())[50:] and 'rel="next"' not in last
    narrow = client_for(dana).get(f"/projects/{project.id}/items/?q=violin").content.decode()
    assert '<span id="explorer-count" data-exact="1">1</span>' in narrow


def test_the_bulk_api_counts_on_a_dry_run_and_then_writes(project, alice, api, imported):
    url = f"/api/v1/projects/{project.id}/explore/bulk/"
    payload = {"action": "exclude", "filter": {"q": "violin"}, "dry_run": True}
    assert api(alice).post(url, payload, format="json").json()["count"] == 1
    assert not Item.objects.filter(excluded=True).exists()
    payload["dry_run"] = False
    assert api(alice).post(url, payload, format="json").json() == {
        "action": "exclude",
        "count": 1,
        "dry_run": False,
    }
    assert list(Item.objects.filter(excluded=True).values_list("id", flat=True)) == [
        imported["x-7"]
    ]
    both = api(alice).post(url, {"action": "exclude", "item_ids": [1], "filter": {}}, format="json")
    assert both.status_code == 400 and both.json()["field"] == "item_ids"


def test_the_explorer_api_is_in_the_openapi_schema():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    explore = paths["/api/v1/projects/{project_id}/explore/"]["get"]
    names = {p["name"] for p in explore["parameters"]}
    assert {"q", "tag", "meta", "agreement_min", "kept", "sort", "page", "page_size"} <= names
    ok = explore["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ExplorerPageOut"}
    assert "post" in paths["/api/v1/projects/{project_id}/explore/bulk/"]


class TestExplorePermissions(ScopedEndpointTests):
    def url(self, world: World) -> str:
        return f"/api/v1/projects/{world.project.id}/explore/"

    def test_an_annotator_gets_403(self, world):
        assert self.call(world.api(world.bob), world).status_code == 403


class TestExploreBulkPermissions(ScopedEndpointTests):
    method = "post"

    def url(self, world: World) -> str:
        return f"/api/v1/projects/{world.project.id}/explore/bulk/"

    def payload(self, world: World) -> dict:
        return {"action": "priority", "value": "2", "item_ids": [world.item.id]}

    def test_an_annotator_gets_403(self, world):
        assert self.call(world.api(world.bob), world).status_code == 403

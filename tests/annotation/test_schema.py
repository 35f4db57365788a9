"""The OpenAPI schema tells the truth: cursor pages are pages, error statuses are listed."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from annotation.models import Role
from annotation.services import assignment_claim_next
from tests.factories import ItemFactory, MembershipFactory, UserFactory

PAGE_KEYS = {"next", "previous", "results"}


@pytest.fixture
def schema(db):
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _ok_schema(schema: dict, operation: dict) -> dict:
    response = operation["responses"].get("200", {})
    return _resolve(
        schema, response.get("content", {}).get("application/json", {}).get("schema", {})
    )


def test_every_list_that_answers_a_page_is_documented_as_a_page(schema, project, alice, bob, api):
    # Ask every parameterless-or-project GET the schema lists and compare the live shape.
    ItemFactory(project=project)
    assignment_claim_next(project=project, annotator=alice)
    client = api(alice)
    pages, checked = [], 0
    for path, methods in schema["paths"].items():
        operation = methods.get("get")
        if operation is None or "{" in path.replace("{project_id}", ""):
            continue
        response = client.get(path.format(project_id=project.id))
        if response.status_code != 200 or response["Content-Type"] != "application/json":
            continue
        checked += 1
        documented = _ok_schema(schema, operation)
        live = response.json()
        if isinstance(live, dict) and set(live) >= PAGE_KEYS:
            pages.append(path)
            assert set(documented.get("properties", {})) >= PAGE_KEYS, path
            assert documented["properties"]["results"]["type"] == "array", path
        elif isinstance(live, list):
            assert documented.get("type") == "array", path
    assert checked >= 10
    assert len(pages) >= 7, pages


def test_the_eight_paginated_lists_are_documented_as_pages_with_cursor_parameters(schema):
    paginated = [
        "/api/v1/projects/",
        "/api/v1/assignments/",
        "/api/v1/projects/{project_id}/items/",
        "/api/v1/projects/{project_id}/annotations/",
        "/api/v1/projects/{project_id}/memberships/",
        "/api/v1/projects/{project_id}/jobs/",
        "/api/v1/projects/{project_id}/datasets/",
        "/api/v1/projects/{project_id}/jobs/{job_id}/scores/",
    ]
    for path in paginated:
        operation = schema["paths"][path]["get"]
        assert set(_ok_schema(schema, operation)["properties"]) >= PAGE_KEYS, path
        assert "cursor" in {p["name"] for p in operation.get("parameters", [])}, path


def test_every_operation_lists_its_error_statuses_with_the_error_shape(schema):
    error = schema["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) >= {"error", "detail", "field", "errors"}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch"):
                assert {"400", "409", "413"} <= codes, (method, path)
            for code in codes - {"200", "201", "202", "204"}:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorOut"), (method, path, code)
    token = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert "429" in token


def test_curators_see_no_free_text_in_project_profiles_but_admins_do(project, alice, api):
    from annotation.services import profile_update

    curator = UserFactory(username="carol")
    MembershipFactory(user=curator, project=project, role=Role.CURATOR)
    annotator = project.memberships.get(role=Role.ANNOTATOR).user
    profile_update(user=annotator, consent=True, self_description="I am Bob from Leeds.")
    as_curator = api(curator).get(f"/api/v1/projects/{project.id}/profiles/").json()
    assert as_curator["results"] and all(
        "self_description" not in row for row in as_curator["results"]
    )
    assert "Leeds" not in str(as_curator)
    as_admin = api(alice).get(f"/api/v1/projects/{project.id}/profiles/").json()
    assert any(row.get("self_description") == "I am Bob from Leeds." for row in as_admin["results"])


def test_leasing_ahead_of_another_annotators_assignment_is_404(project, items, alice, bob, client):
    theirs = assignment_claim_next(project=project, annotator=alice)
    client.force_login(bob)
    response = client.post(f"/projects/{project.id}/label/{theirs.id}/ahead/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    from annotation.models import Assignment

    assert not Assignment.objects.filter(annotator=bob).exists()
    mine = assignment_claim_next(project=project, annotator=bob)
    assert client.post(f"/projects/{project.id}/label/{mine.id}/ahead/").status_code == 200

"""Hostile input gets 400 (or 413) in the one error shape and writes nothing; never a 500.

The property tests walk every JSON-accepting operation of the OpenAPI schema, which
drf-spectacular builds from the URL configuration, so a new endpoint is covered
without a test written for it.
"""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from annotation.models import Annotation, Item, Membership, Project, Question, Response
from annotation.services import assignment_claim_next
from curation.models import Adjudication, Job, Judge, ReviewEntry
from tests.factories import ItemFactory
from tests.security.world import world_rows

ERROR_KEYS = {"error", "detail", "field", "errors"}

DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE_BODIES = {
    "nested 10,000 deep": '{"name": "x", "params": ' + DEEP + "}",
    "NaN": '{"name": "x", "priority": NaN, "settings": {"a": NaN}}',
    "Infinity": '{"name": "x", "params": {"seed": -Infinity}}',
    "1e400": '{"name": "x", "priority": 1e400, "params": {"seed": 1e400}}',
    "a 5,000-digit integer": '{"name": "x", "position": 1' + "0" * 5000 + "}",
    "2^64": '{"name": "x", "position": 18446744073709551616}',
    "NUL in a string": '{"name": "a\\u0000b", "settings": {"k": "\\u0000"}}',
    "NUL in a key": '{"name": "x", "settings": {"\\u0000": 1}}',
}


def _row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            Project,
            Question,
            Item,
            Response,
            Annotation,
            Membership,
            Job,
            ReviewEntry,
            Adjudication,
            Judge,
        )
    }


@pytest.fixture
def world_ids(project, alice, bob):
    """A real row behind every path parameter (the builder the generated attacks use too)."""
    return world_rows(project=project, admin=alice, annotator=bob, tag="limits")


def _json_write_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method not in ("post", "put", "patch"):
                continue
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                operations.append((method, path))
    return operations


def test_the_schema_walk_finds_the_json_endpoints_of_both_apps(db):
    paths = {path for _, path in _json_write_operations()}
    assert "/api/v1/projects/" in paths
    assert "/api/v1/assignments/{assignment_id}/submit/" in paths
    assert "/api/v1/projects/{project_id}/jobs/" in paths
    assert len(paths) >= 12


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_every_json_endpoint_answers_hostile_json_with_400_and_writes_nothing(
    case, world_ids, alice, api
):
    client = api(alice)
    before = _row_counts()
    answered = []
    for method, path in _json_write_operations():
        url = path.format(**world_ids)
        response = getattr(client, method)(
            url, data=HOSTILE_BODIES[case], content_type="application/json"
        )
        answered.append((method, path, response.status_code))
        assert response.status_code < 500, (method, path, response.content[:300])
        if "{version_id}" in path:
            continue  # no such version: 404 before the body is read
        assert response.status_code == 400, (method, path, response.status_code, response.content)
        body = response.json()
        assert set(body) >= ERROR_KEYS and body["error"] == "invalid", body
    assert _row_counts() == before
    assert len(answered) >= 13


def test_a_deep_body_names_the_limit_and_nan_names_its_field(project, alice, api):
    client = api(alice)
    deep = client.post(
        "/api/v1/projects/", data='{"name": ' + DEEP + "}", content_type="application/json"
    )
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["detail"]
    nan = client.post(
        "/api/v1/projects/",
        data='{"name": "p", "settings": {"temperature": NaN}}',
        content_type="application/json",
    )
    assert nan.status_code == 400
    assert nan.json()["field"] == "settings.temperature"


def test_an_item_with_priority_1e400_is_refused_and_not_written(project, alice, api):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/items/",
        data='{"prompt": "Hi", "responses": ["a", "b"], "priority": 1e400}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "priority"
    assert not Item.objects.filter(project=project).exists()


def test_a_non_finite_number_anywhere_in_an_import_refuses_the_whole_file(project, alice, api):
    lines = [json.dumps({"prompt": f"Q{i}", "responses": ["a", "b"]}) for i in range(50)]
    lines[30] = '{"prompt": "Q", "responses": ["a", "b"], "metadata": {"score": NaN}}'
    lines[40] = '{"prompt": "Q", "responses": ["a", "b"], "priority": Infinity}'
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/import/?format=native",
        data="\n".join(lines),
        content_type="application/x-ndjson",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["line"] for e in errors] == [31, 41]
    assert errors[0]["field"] == "line 31: metadata.score"
    assert not Item.objects.filter(project=project).exists()


def test_a_row_stored_with_infinity_before_the_checks_still_reads(project, alice, api):
    item = ItemFactory(project=project)
    Item.objects.filter(pk=item.pk).update(priority=float("inf"))
    client = api(alice)
    listing = client.get(f"/api/v1/projects/{project.id}/items/")
    assert listing.status_code == 200
    assert listing.json()["results"][0]["priority"] is None
    detail = client.get(f"/api/v1/projects/{project.id}/items/{item.id}/")
    assert detail.status_code == 200 and detail.json()["priority"] is None


@pytest.mark.parametrize(
    ("url", "method", "body", "field"),
    [
        ("/api/v1/projects/", "post", {"name": "p", "settings": {"a": "x\u0000"}}, "settings.a"),
        ("/api/v1/projects/{p}/", "patch", {"instructions": "a\u0000"}, "instructions"),
        (
            "/api/v1/projects/{p}/items/",
            "post",
            {"conversation": [{"role": "user", "content": "\u0000"}], "responses": ["a"]},
            "conversation[0].content",
        ),
        (
            "/api/v1/projects/{p}/items/",
            "post",
            {"prompt": "q", "responses": ["a", "b\u0000"]},
            "responses[1]",
        ),
        (
            "/api/v1/projects/{p}/items/",
            "post",
            {"prompt": "q", "responses": ["a"], "metadata": {"m": "\u0000"}},
            "metadata.m",
        ),
        ("/api/v1/profile/", "put", {"self_description": "me\u0000"}, "self_description"),
        ("/api/v1/profile/", "put", {"languages": [{"language": "\u0000"}]}, "languages"),
    ],
)
def test_a_nul_character_gets_400_naming_the_field(project, alice, api, url, method, body, field):
    before = _row_counts()
    response = getattr(api(alice), method)(url.format(p=project.id), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["field"], response.json()
    assert _row_counts() == before


def test_nul_in_correction_text_and_comment_gets_400(project, items, bob, api):
    assignment = assignment_claim_next(project=project, annotator=bob)
    responses = list(assignment.item.responses.order_by("position"))
    r = [x.id for x in responses]
    answers = [
        {"question": "preference", "chosen": r[0], "rejected": r[1]},
        {"question": "ranking", "ranking": [[r[2]], [r[0], r[1]]]},
        {
            "question": "aspects",
            "ratings": [
                {"response": x, "aspect": a, "value": 5}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
        {
            "question": "corrections",
            "corrections": [
                {
                    "response": r[0],
                    "start": 0,
                    "end": 5,
                    "original_text": responses[0].text[:5],
                    "corrected_text": "fix\u0000",
                    "comment": "why\u0000",
                }
            ],
        },
    ]
    response = api(bob).post(
        f"/api/v1/assignments/{assignment.id}/submit/", {"answers": answers}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"].startswith("answers[3].corrections[0].")
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("position", [40_000, 2**62])
def test_a_question_position_out_of_range_gets_400(project, alice, api, position):
    client = api(alice)
    created = client.post(
        f"/api/v1/projects/{project.id}/questions/",
        {"kind": "ranking", "name": "late", "position": position},
        format="json",
    )
    assert created.status_code == 400 and created.json()["field"] == "position"
    question = project.questions.first()
    changed = client.patch(
        f"/api/v1/projects/{project.id}/questions/{question.id}/",
        {"position": position},
        format="json",
    )
    assert changed.status_code == 400 and changed.json()["field"] == "position"
    nested = client.post(
        "/api/v1/projects/",
        {"name": "p", "questions": [{"kind": "ranking", "position": position}]},
        format="json",
    )
    assert nested.status_code == 400 and nested.json()["field"] == "questions[0].position"


def test_40000_responses_on_one_item_get_400(project, alice, api):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/items/",
        {"prompt": "q", "responses": [f"r{i}" for i in range(40_000)]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "responses"
    assert "at most 100 responses" in response.json()["detail"]
    assert not Item.objects.exists()


def test_time_spent_of_10_to_the_12_gets_400_in_submit_and_import(project, items, bob, alice, api):
    assignment = assignment_claim_next(project=project, annotator=bob)
    submitted = api(bob).post(
        f"/api/v1/assignments/{assignment.id}/submit/",
        {"answers": [], "time_spent_ms": 10**12},
        format="json",
    )
    assert submitted.status_code == 400 and submitted.json()["field"] == "time_spent_ms"
    line = {
        "external_id": "t",
        "prompt": "q",
        "responses": ["a", "b"],
        "annotations": [{"answers": [], "time_spent_ms": 10**12}],
    }
    imported = api(alice).post(
        f"/api/v1/projects/{project.id}/import/?format=native",
        data=json.dumps(line),
        content_type="application/x-ndjson",
    )
    assert imported.status_code == 400
    assert imported.json()["field"] == "line 1: annotations[0].time_spent_ms"


def test_a_ranking_with_nested_groups_gets_400(project, items, bob, api):
    assignment = assignment_claim_next(project=project, annotator=bob)
    r = list(assignment.item.responses.order_by("position").values_list("id", flat=True))
    response = api(bob).post(
        f"/api/v1/assignments/{assignment.id}/submit/",
        {"answers": [{"question": "ranking", "ranking": [[[r[0]]], [r[1]], [r[2]]]}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "answers[0].ranking[0]"
    assert not Annotation.objects.exists()


def test_form_encoded_settings_null_gets_400_on_create_and_update(project, alice, api):
    client = api(alice)
    created = client.post("/api/v1/projects/", {"name": "form", "settings": "null"})
    assert created.status_code == 400 and created.json()["field"] == "settings"
    updated = client.patch(
        f"/api/v1/projects/{project.id}/",
        "settings=null",
        content_type="application/x-www-form-urlencoded",
    )
    assert updated.status_code == 400 and updated.json()["field"] == "settings"
    nan = client.post("/api/v1/projects/", {"name": "form", "settings": '{"a": NaN}'})
    assert nan.status_code == 400 and nan.json()["field"] == "settings"
    project.refresh_from_db()
    assert project.settings is not None
    assert not Project.objects.filter(name="form").exists()


def test_a_body_over_the_limit_gets_413_in_the_error_shape(project, alice, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api(alice).post(
        "/api/v1/projects/",
        data=json.dumps({"name": "big", "instructions": "x" * 20_000}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert set(response.json()) >= ERROR_KEYS and response.json()["error"] == "too_large"
    form = api(alice).post("/api/v1/projects/", {"name": "big", "instructions": "x" * 20_000})
    assert form.status_code == 413 and form.json()["error"] == "too_large"
    assert not Project.objects.filter(name="big").exists()


def test_an_import_over_the_limit_gets_413_and_a_long_line_its_line_number(
    project, alice, api, settings
):
    client = api(alice)
    line = json.dumps({"prompt": "q", "responses": ["a", "b" * 5_000]})
    settings.BALLOT_IMPORT_MAX_LINE_BYTES = 2_000
    long_line = client.post(
        f"/api/v1/projects/{project.id}/import/?format=native",
        data=json.dumps({"prompt": "p", "responses": ["a", "b"]}) + "\n" + line,
        content_type="application/x-ndjson",
    )
    assert long_line.status_code == 400
    assert long_line.json()["errors"][0]["line"] == 2
    assert "at most 2000" in long_line.json()["detail"]
    settings.BALLOT_IMPORT_MAX_BYTES = 3_000
    too_big = client.post(
        f"/api/v1/projects/{project.id}/import/?format=native",
        data="\n".join([json.dumps({"prompt": f"q{i}", "responses": ["a"]}) for i in range(200)]),
        content_type="application/x-ndjson",
    )
    assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("big.jsonl", b"x" * 4_000)
    multipart = client.post(f"/api/v1/projects/{project.id}/import/", {"file": upload})
    assert multipart.status_code == 413
    assert not Item.objects.filter(project=project).exists()


def test_the_labeling_page_submit_applies_the_same_limits(project, items, bob, client):
    client.force_login(bob)
    assignment = assignment_claim_next(project=project, annotator=bob)
    response = client.post(
        f"/projects/{project.id}/label/{assignment.id}/submit/",
        data='{"answers": ' + DEEP + "}",
        content_type="application/json",
    )
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]
    nan = client.post(
        f"/projects/{project.id}/label/{assignment.id}/submit/",
        data='{"answers": [], "time_spent_ms": NaN}',
        content_type="application/json",
    )
    assert nan.status_code == 400 and nan.json()["field"] == "time_spent_ms"
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_every_hostile_json_case_in_an_import_line_is_refused_with_its_line_number(
    case, project, alice, api
):
    good = json.dumps({"prompt": "fine", "responses": ["a", "b"]})
    hostile = HOSTILE_BODIES[case].replace('"name": "x"', '"prompt": "q", "responses": ["a"]')
    hostile = hostile.replace('"name": "a\\u0000b"', '"prompt": "a\\u0000b", "responses": ["a"]')
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/import/?format=native",
        data="\n".join([good, hostile, good]),
        content_type="application/x-ndjson",
    )
    assert response.status_code == 400, response.content[:300]
    assert [e["line"] for e in response.json()["errors"]] == [2]
    assert not Item.objects.filter(project=project).exists()

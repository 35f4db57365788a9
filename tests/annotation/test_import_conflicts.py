"""Re-importing an edited file changes nothing unless the user says how (on_conflict)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Annotation, Item, PairwiseAnswer, Response
from annotation.services import assignment_claim_next, items_import
from tests.factories import ProjectFactory


@pytest.fixture
def empty_project(alice):
    return ProjectFactory(created_by=alice)


def _trl(prompt: str, chosen: str, rejected: str, **extra) -> str:
    return json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra})


FILE_WITHOUT_IDS = [
    _trl("What is 2+2?", "4", "5"),
    _trl("Capital of France?", "Paris", "Lyon"),
    _trl("Capital of France?", "Paris, of course", "Marseille"),
]


def _texts(item: Item) -> list[str]:
    return sorted(item.responses.values_list("text", flat=True))


def test_reimporting_an_unchanged_file_changes_nothing(empty_project):
    first = items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    again = items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    assert first.created == 3
    assert again.created == 0 and again.existing == 3 and again.conflicts == 0


def test_an_edited_line_without_an_id_is_a_conflict_not_a_new_item(empty_project):
    items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    edited = list(FILE_WITHOUT_IDS)
    edited[1] = _trl("Capital of France?", "Paris.", "Lyon")
    with pytest.raises(Conflict) as caught:
        items_import(project=empty_project, lines=edited, fmt="trl")
    assert [e["line"] for e in caught.value.errors] == [2]
    assert caught.value.status_code == 409
    assert Item.objects.filter(project=empty_project).count() == 3
    assert not Response.objects.filter(text="Paris.").exists()


def test_a_swapped_label_is_an_edit_too(empty_project):
    items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    edited = list(FILE_WITHOUT_IDS)
    edited[0] = _trl("What is 2+2?", "5", "4")
    with pytest.raises(Conflict) as caught:
        items_import(project=empty_project, lines=edited, fmt="trl")
    assert [e["line"] for e in caught.value.errors] == [1]


def test_skip_keeps_the_stored_items_and_reports_the_lines(empty_project):
    items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    edited = [*FILE_WITHOUT_IDS, _trl("New?", "yes", "no")]
    edited[2] = _trl("Capital of France?", "Paris, of course", "Nice")
    result = items_import(project=empty_project, lines=edited, fmt="trl", on_conflict="skip")
    assert result.conflicts == 1 and result.conflict_lines == [3]
    assert result.created == 1 and result.existing == 2 and result.updated == 0
    assert not Response.objects.filter(text="Nice").exists()


def test_update_replaces_the_item_and_its_imported_label_in_place(empty_project):
    items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    item = Item.objects.get(project=empty_project, responses__text="4")
    edited = list(FILE_WITHOUT_IDS)
    edited[0] = _trl("What is 2+2?", "Four", "5", metadata={"checked": True})
    result = items_import(project=empty_project, lines=edited, fmt="trl", on_conflict="update")
    assert result.updated == 1 and result.created == 0 and result.existing == 2
    item.refresh_from_db()
    assert _texts(item) == ["5", "Four"] and item.metadata == {"checked": True}
    answer = PairwiseAnswer.objects.select_related("chosen").get(annotation__item=item)
    assert answer.chosen.text == "Four"
    assert Annotation.objects.filter(item=item).count() == 1
    # The edit is now the stored version: importing it again changes nothing.
    again = items_import(project=empty_project, lines=edited, fmt="trl")
    assert again.existing == 3 and again.conflicts == 0


def test_an_edited_line_with_an_id_is_a_conflict_and_update_applies_it(empty_project):
    line = {"external_id": "q-1", "prompt": "Hi", "responses": ["a", "b"], "tags": ["x"]}
    items_import(project=empty_project, lines=[json.dumps(line)], fmt="native")
    line["responses"] = ["a", "c"]
    with pytest.raises(Conflict):
        items_import(project=empty_project, lines=[json.dumps(line)], fmt="native")
    items_import(
        project=empty_project, lines=[json.dumps(line)], fmt="native", on_conflict="update"
    )
    item = Item.objects.get(project=empty_project, external_id="q-1")
    assert list(item.responses.order_by("position").values_list("text", flat=True)) == ["a", "c"]


def test_update_refuses_items_with_work_done_in_ballot(project, bob):
    line = {"external_id": "w-1", "prompt": "Hi", "responses": ["a", "b", "c"]}
    items_import(project=project, lines=[json.dumps(line)], fmt="native")
    assignment = assignment_claim_next(project=project, annotator=bob)
    assert assignment.item.external_id == "w-1"
    line["responses"] = ["a", "b", "d"]
    with pytest.raises(Conflict) as caught:
        items_import(project=project, lines=[json.dumps(line)], fmt="native", on_conflict="update")
    assert "work done in Ballot" in caught.value.detail
    assert Response.objects.filter(item=assignment.item, text="c").exists()


def test_on_conflict_must_be_known(empty_project):
    with pytest.raises(ValidationFailed) as caught:
        items_import(project=empty_project, lines=FILE_WITHOUT_IDS, on_conflict="merge")
    assert caught.value.field == "on_conflict"


def test_the_import_api_answers_409_with_lines_and_takes_on_conflict(project, alice, api):
    client = api(alice)
    url = f"/api/v1/projects/{project.id}/import/?format=trl"
    assert (
        client.post(
            url, "\n".join(FILE_WITHOUT_IDS), content_type="application/x-ndjson"
        ).status_code
        == 201
    )
    edited = list(FILE_WITHOUT_IDS)
    edited[0] = _trl("What is 2+2?", "four", "5")
    conflict = client.post(url, "\n".join(edited), content_type="application/x-ndjson")
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["line"] == 1
    skipped = client.post(
        url + "&on_conflict=skip", "\n".join(edited), content_type="application/x-ndjson"
    )
    assert skipped.status_code == 200 and skipped.json()["conflict_lines"] == [1]
    updated = client.post(
        url + "&on_conflict=update", "\n".join(edited), content_type="application/x-ndjson"
    )
    assert updated.status_code == 200 and updated.json()["updated"] == 1
    bad = client.post(
        url + "&on_conflict=nope", "\n".join(edited), content_type="application/x-ndjson"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "on_conflict"


def test_skip_invalid_leaves_empty_replies_out_with_a_count(project, alice, api):
    lines = [_trl("Q1", "yes", "no"), _trl("Q2", "", "no"), _trl("Q3", "yes", "  ")]
    client = api(alice)
    url = f"/api/v1/projects/{project.id}/import/?format=trl"
    refused = client.post(url, "\n".join(lines), content_type="application/x-ndjson")
    assert refused.status_code == 400
    assert [e["line"] for e in refused.json()["errors"]] == [2, 3]
    assert refused.json()["errors"][0]["field"] == "line 2: chosen"
    assert not Item.objects.filter(project=project).exists()
    skipped = client.post(
        url + "&skip_invalid=1", "\n".join(lines), content_type="application/x-ndjson"
    )
    assert skipped.status_code == 201
    assert skipped.json()["created"] == 1 and skipped.json()["skipped_invalid"] == 2
    assert [e["line"] for e in skipped.json()["invalid_lines"]] == [2, 3]


def test_import_items_command_takes_on_conflict_and_skip_invalid(empty_project, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(FILE_WITHOUT_IDS))
    call_command(
        "import_items", str(path), project=empty_project.id, format="trl", stdout=StringIO()
    )
    path.write_text("\n".join([_trl("What is 2+2?", "four", "5"), _trl("Q", "", "x")]))
    with pytest.raises(CommandError):
        call_command(
            "import_items",
            str(path),
            project=empty_project.id,
            format="trl",
            stdout=StringIO(),
            stderr=StringIO(),
            skip_invalid=True,
        )
    out = StringIO()
    call_command(
        "import_items",
        str(path),
        "--on-conflict",
        "update",
        "--skip-invalid",
        project=empty_project.id,
        format="trl",
        stdout=out,
    )
    assert "1 updated" in out.getvalue() and "1 bad line(s) skipped" in out.getvalue()
    assert Response.objects.filter(text="four").exists()


def test_an_item_posted_without_an_id_for_a_known_prompt_is_added(project, alice, api):
    client = api(alice)
    url = f"/api/v1/projects/{project.id}/items/"
    assert (
        client.post(url, {"prompt": "Same", "responses": ["a", "b"]}, format="json").status_code
        == 201
    )
    assert (
        client.post(url, {"prompt": "Same", "responses": ["c", "d"]}, format="json").status_code
        == 201
    )
    again = client.post(url, {"prompt": "Same", "responses": ["c", "d"]}, format="json")
    assert again.status_code == 409


def test_items_imported_before_fingerprints_are_found_by_their_old_ids(empty_project):
    # Before this version id-less lines were keyed on their whole content and stored no fingerprint.
    items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl", derive_ids="content")
    Item.objects.filter(project=empty_project).update(content_hash="")
    again = items_import(project=empty_project, lines=FILE_WITHOUT_IDS, fmt="trl")
    assert again.created == 0 and again.existing == 3
    assert Item.objects.filter(project=empty_project).count() == 3


def test_an_edit_of_an_item_imported_before_fingerprints_is_still_a_conflict(empty_project):
    line = {"external_id": "old-1", "prompt": "Hi", "responses": ["a", "b"]}
    items_import(project=empty_project, lines=[json.dumps(line)], fmt="native")
    Item.objects.filter(project=empty_project).update(content_hash="")
    assert items_import(project=empty_project, lines=[json.dumps(line)]).existing == 1
    line["responses"] = ["a", "B"]
    with pytest.raises(Conflict):
        items_import(project=empty_project, lines=[json.dumps(line)], fmt="native")


def test_posting_another_item_under_a_known_external_id_is_409_naming_the_field(
    project, alice, api
):
    client = api(alice)
    url = f"/api/v1/projects/{project.id}/items/"
    first = {"external_id": "e-1", "prompt": "q", "responses": ["a", "b"]}
    assert client.post(url, first, format="json").status_code == 201
    other = client.post(url, {**first, "responses": ["c", "d"]}, format="json")
    assert other.status_code == 409 and other.json()["field"] == "external_id"
    assert list(Item.objects.get(external_id="e-1").responses.values_list("text", flat=True)) == [
        "a",
        "b",
    ]

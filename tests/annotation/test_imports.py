from __future__ import annotations

import json

import pytest

from annotation.adapters import ADAPTERS
from annotation.errors import ValidationFailed
from annotation.models import (
    Annotation,
    Item,
    PairwiseAnswer,
    RankingAnswer,
    RatingAnswer,
    Response,
)
from annotation.services import items_import, question_create
from tests.datasets import dataset
from tests.factories import ProjectFactory


@pytest.fixture
def empty_project(alice):
    return ProjectFactory(created_by=alice)


def _lines(rows):
    return [json.dumps(row) for row in rows]


HH_EMPTY_REPLY_LINES = [87, 517, 926, 1104]


def test_hh_rlhf_rejects_the_pairs_with_an_empty_reply_by_line_number(empty_project):
    path = dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl"
    with pytest.raises(ValidationFailed) as caught:
        items_import(project=empty_project, lines=path.open("rb"), fmt="hh")
    assert [e["line"] for e in caught.value.errors] == HH_EMPTY_REPLY_LINES
    assert "empty" in caught.value.errors[0]["detail"]
    assert caught.value.field == "line 87: chosen"
    assert not Item.objects.filter(project=empty_project).exists()


def test_hh_rlhf_imports_every_pair_with_its_label(empty_project):
    path = dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl"
    rows = [json.loads(line) for line in path.open()]
    result = items_import(project=empty_project, lines=path.open("rb"), fmt="hh", skip_invalid=True)
    assert result.lines == len(rows) == 2312
    assert result.skipped_invalid == 4
    assert [e["line"] for e in result.invalid_lines] == HH_EMPTY_REPLY_LINES
    rows = [r for n, r in enumerate(rows, start=1) if n not in HH_EMPTY_REPLY_LINES]
    distinct = {(r["chosen"], r["rejected"]) for r in rows}
    assert result.created + result.duplicates == len(rows)
    assert Item.objects.filter(project=empty_project).count() == result.created <= len(distinct)
    assert Response.objects.filter(item__project=empty_project).count() == 2 * result.created
    assert (
        PairwiseAnswer.objects.filter(annotation__project=empty_project).count() == result.created
    )
    # The stored label points at the final assistant turn of the chosen transcript.
    first = rows[0]
    item = Item.objects.get(
        project=empty_project,
        external_id=result
        and Item.objects.filter(project=empty_project).order_by("id").first().external_id,
    )
    answer = PairwiseAnswer.objects.select_related("chosen", "rejected").get(annotation__item=item)
    assert first["chosen"].endswith(answer.chosen.text)
    assert first["rejected"].endswith(answer.rejected.text)
    assert item.conversation[-1]["role"] == "user"
    # Importing the same file again changes nothing.
    again = items_import(project=empty_project, lines=path.open("rb"), fmt="hh", skip_invalid=True)
    assert again.created == 0 and again.existing == result.created
    assert Annotation.objects.filter(project=empty_project).count() == result.created


def test_oasst2_ranked_groups_import_as_rankings(empty_project):
    adapted = ADAPTERS["oasst2_openpaws_subset"](dataset("oasst2_openpaws_subset"))
    # Count ranked sibling groups of assistant replies straight from the file.
    groups: list[str] = []

    def walk(message):
        replies = message.get("replies") or []
        ranked = [r for r in replies if r.get("rank") is not None]
        if len(ranked) >= 2 and all(r["role"] == "assistant" for r in ranked):
            groups.append(message["message_id"])
        for reply in replies:
            walk(reply)

    for line in (dataset("oasst2_openpaws_subset") / "oasst2_filtered.jsonl").open():
        walk(json.loads(line)["prompt"])
    result = items_import(project=empty_project, lines=_lines(adapted.rows), fmt=adapted.fmt)
    # The file repeats a few trees: 211 ranked groups, of which some are the same group twice.
    expected = len(set(groups))
    assert len(groups) == 211 and result.lines == 211
    assert result.created == expected and result.duplicates == 211 - expected
    assert RankingAnswer.objects.filter(annotation__project=empty_project).count() == expected
    # Best first: the rank-0 reply heads every stored ranking.
    for row in adapted.rows[:20]:
        item = Item.objects.get(project=empty_project, external_id=row["external_id"])
        ranking = RankingAnswer.objects.get(annotation__item=item).ranking
        best_position = row["ranks"].index(min(row["ranks"]))
        assert Response.objects.get(pk=ranking[0][0]).position == best_position


def test_topical_chat_ratings_import_with_per_aspect_scales(empty_project):
    adapted = ADAPTERS["topical_chat_usr_unieval"](dataset("topical_chat_usr_unieval"))
    source = json.loads((dataset("topical_chat_usr_unieval") / "topical_chat.json").read_text())
    result = items_import(project=empty_project, lines=_lines(adapted.rows), fmt=adapted.fmt)
    assert result.created == len({e["source"] for e in source}) == 60
    assert Response.objects.filter(item__project=empty_project).count() == len(source) == 360
    assert RatingAnswer.objects.filter(annotation__project=empty_project).count() == 360 * 6
    question = empty_project.questions.get(name="rating")
    scales = {a["name"]: a["scale"] for a in question.config["aspects"]}
    assert scales["overall"]["min"] == 1 and scales["overall"]["max"] == 5
    assert scales["groundedness"]["max"] == 1
    stored = RatingAnswer.objects.filter(
        annotation__project=empty_project, aspect="overall"
    ).values_list("value", flat=True)
    assert sorted(stored) == pytest.approx(sorted(e["scores"]["overall"] for e in source))


def test_tulu_keeps_every_evaluator_as_a_distinct_annotator(empty_project):
    adapted = ADAPTERS["tulu1_human_eval"](dataset("tulu1_human_eval"))
    for spec in adapted.questions:
        question_create(project=empty_project, **spec)
    rows = [
        json.loads(line)
        for line in (dataset("tulu1_human_eval") / "eval_annotations_tulu_1.jsonl").open()
    ]
    result = items_import(project=empty_project, lines=_lines(adapted.rows), fmt="native")
    assert result.created == len({r["instance_index"] for r in rows}) == 996
    pairs = {(r["instance_index"], r["evaluator"]) for r in rows}
    assert result.annotations == len(pairs)
    assert Annotation.objects.filter(project=empty_project).values(
        "annotator"
    ).distinct().count() == len({r["evaluator"] for r in rows})


def test_a_bad_line_is_reported_with_its_number_and_nothing_is_written(empty_project):
    lines = [
        json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}),
        json.dumps({"prompt": "d", "chosen": "e", "rejected": "f"}),
        "{not json",
        json.dumps({"prompt": "g", "chosen": 5, "rejected": "h"}),
    ]
    with pytest.raises(ValidationFailed) as error:
        items_import(project=empty_project, lines=lines, fmt="trl")
    assert error.value.field.startswith("line 3")
    assert [e["line"] for e in error.value.errors] == [3, 4]
    assert Item.objects.filter(project=empty_project).count() == 0
    assert not empty_project.questions.exists()


def test_trl_conversational_rows_with_an_implicit_prompt(empty_project):
    row = {
        "chosen": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ],
        "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "What."}],
    }
    result = items_import(project=empty_project, lines=[json.dumps(row)], fmt="trl")
    assert result.created == 1
    item = Item.objects.get(project=empty_project)
    assert item.conversation == [{"role": "user", "content": "Hi"}]
    answer = PairwiseAnswer.objects.get(annotation__item=item)
    assert answer.chosen.text == "Hello! How can I help?"


def test_native_labels_are_validated_like_submissions(empty_project):
    question_create(project=empty_project, kind="pairwise", name="preference")
    row = {
        "external_id": "x",
        "prompt": "p",
        "responses": ["a", "b"],
        "annotations": [
            {"annotator": "z", "answers": [{"question": "preference", "chosen": 0, "rejected": 7}]}
        ],
    }
    with pytest.raises(ValidationFailed) as error:
        items_import(project=empty_project, lines=[json.dumps(row)], fmt="native")
    assert "line 1" in error.value.field and "rejected" in error.value.field
    assert not Item.objects.filter(project=empty_project).exists()


def test_the_import_api_reports_line_errors(project, alice, api):
    client = api(alice)
    body = b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a"}\n'
    response = client.post(
        f"/api/v1/projects/{project.id}/import/?format=trl",
        data=body,
        content_type="application/x-ndjson",
    )
    assert response.status_code == 400
    assert response.json()["field"].startswith("line 2")
    assert not Item.objects.filter(project=project, external_id__startswith="sha-").exists()


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prompt": "a", "chosen": "b", "rejected": "c", "metadata": "abc"}, "metadata"),
        ({"prompt": "a", "responses": ["b", "c"], "ranks": [1, 2], "metadata": [1, 2]}, "metadata"),
        ({"prompt": "a", "response": "b", "ratings": {"overall": 3}, "tags": 5}, "tags"),
        ({"prompt": "a", "chosen": "b", "rejected": "c", "tags": "abc"}, "tags"),
    ],
)
def test_metadata_and_tags_of_the_wrong_type_are_a_400_naming_the_line_in_every_shape(
    project, alice, api, row, field
):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/import/",
        data=json.dumps(row).encode() + b"\n",
        content_type="application/x-ndjson",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == f"line 1: {field}"
    assert not Item.objects.filter(project=project, external_id__startswith="sha-").exists()


@pytest.mark.slow
def test_ten_thousand_items_import_with_a_constant_number_of_queries(
    empty_project, django_assert_max_num_queries
):
    from django.db import connection

    # Bulk inserts of 2,000 rows: a few dozen statements on PostgreSQL; SQLite splits
    # each bulk insert further by its bound-parameter limit. Never one query per row.
    limit = 60 if connection.vendor == "postgresql" else 600
    rows = [
        {
            "external_id": f"bulk-{i}",
            "prompt": f"Question {i}?",
            "chosen": f"Good answer {i}",
            "rejected": f"Bad {i}",
        }
        for i in range(10_000)
    ]
    with django_assert_max_num_queries(limit, connection=None):
        result = items_import(project=empty_project, lines=_lines(rows), fmt="trl")
    assert result.created == 10_000
    assert PairwiseAnswer.objects.filter(annotation__project=empty_project).count() == 10_000


def test_a_batch_writes_its_items_in_one_insert_and_never_rewrites_them(
    empty_project, alice, monkeypatch
):
    from django.contrib.postgres.search import SearchQuery
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.search import SEARCH_CONFIG
    from annotation.services.imports import writer

    monkeypatch.setattr(writer, "BATCH", 3)
    rows = [
        {
            "external_id": f"glacier-{i}",
            "prompt": f"Tell me about glaciers, part {i}",
            "responses": ["Rivers of ice.", "No idea."],
        }
        for i in range(7)
    ]

    def statements(project, lines):
        with CaptureQueriesContext(connection) as captured:
            result = items_import(project=project, lines=_lines(lines), fmt="native")
        assert result.created == len(lines)
        return [query["sql"] for query in captured.captured_queries]

    one_batch = statements(ProjectFactory(created_by=alice), rows[:3])
    three_batches = statements(empty_project, rows)
    # Two statements per batch of unlabelled items: its items, then their responses.
    assert len(three_batches) - len(one_batch) == 2 * 2
    item_writes = [
        s
        for s in three_batches
        if s.startswith(('INSERT INTO "annotation_item"', 'UPDATE "annotation_item"'))
    ]
    response_writes = [
        s for s in three_batches if s.startswith('INSERT INTO "annotation_response"')
    ]
    assert len(item_writes) == len(response_writes) == 3
    # No second pass over the rows just written (the search vector once was one).
    assert all(s.startswith('INSERT INTO "annotation_item"') for s in item_writes)
    if connection.vendor == "postgresql":
        # Django's UNNEST bulk insert (one array per column, not a placeholder per value; a
        # single row goes as VALUES). A column type without an array type turns it off.
        assert all(" FROM UNNEST(" in s for s in item_writes[:2] + response_writes)
        # The vector is there as soon as the row is: stemmed words find every item.
        found = Item.objects.filter(
            project=empty_project, search_vector=SearchQuery("glacier", config=SEARCH_CONFIG)
        )
        assert found.count() == 7


def test_a_labelled_import_rewrites_only_the_items_whose_agreement_moved(empty_project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    question_create(project=empty_project, kind="pairwise", name="preference", prompt="Which?")

    def row(i, annotators):
        return {
            "external_id": f"labelled-{i}",
            "prompt": f"Question {i}?",
            "responses": ["A", "B"],
            "annotations": [
                {
                    "annotator": name,
                    "answers": [{"question": "preference", "chosen": 0, "rejected": 1}],
                }
                for name in annotators
            ],
        }

    # One vote each: agreement stays NULL, so no item row is written twice.
    with CaptureQueriesContext(connection) as captured:
        items_import(
            project=empty_project, lines=_lines([row(i, ["ann"]) for i in range(4)]), fmt="native"
        )
    assert not [q for q in captured if q["sql"].startswith('UPDATE "annotation_item"')]
    assert (
        list(Item.objects.filter(project=empty_project).values_list("agreement", flat=True))
        == [None] * 4
    )
    # Two agreeing votes on one new item: its figure is stored, the other item's is not touched.
    with CaptureQueriesContext(connection) as captured:
        items_import(
            project=empty_project,
            lines=_lines([row(10, ["ann", "bob"]), row(11, ["ann"])]),
            fmt="native",
        )
    updates = [q["sql"] for q in captured if q["sql"].startswith('UPDATE "annotation_item"')]
    assert len(updates) == 1
    two = Item.objects.get(project=empty_project, external_id="labelled-10")
    assert two.agreement == 1.0 and str(two.pk) in updates[0]
    assert Item.objects.get(project=empty_project, external_id="labelled-11").agreement is None


def test_import_dataset_refuses_hh_empty_replies_unless_asked_to_skip_them(empty_project):
    from io import StringIO

    from django.core.management import CommandError, call_command

    folder = str(dataset("hh_rlhf_harmless"))
    errors = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_dataset", "hh_rlhf_harmless", folder, project=empty_project.id, stderr=errors
        )
    assert "line 87: chosen" in errors.getvalue()
    assert not Item.objects.filter(project=empty_project).exists()
    out = StringIO()
    call_command(
        "import_dataset",
        "hh_rlhf_harmless",
        folder,
        "--skip-invalid",
        project=empty_project.id,
        stdout=out,
        stderr=StringIO(),
    )
    assert json.loads(out.getvalue())["skipped_invalid"] == 4

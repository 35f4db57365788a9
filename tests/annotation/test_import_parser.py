"""The import parser on its own: lines in, parsed items or line-numbered errors out, no database.

None of these tests asks for the ``db`` fixture, so pytest-django refuses any
query: a parser that touched the ORM would fail here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from annotation.errors import ValidationFailed
from annotation.models import Source
from annotation.services.imports import (
    LineError,
    ParsedItem,
    ParsedLabel,
    detect_format,
    item_fingerprint,
    items_derive_ids,
    items_merge_duplicates,
    items_parse,
)
from annotation.services.imports import formats as shapes

PACKAGE = Path(shapes.__file__).parent


def _lines(*rows: object) -> list[str]:
    return [row if isinstance(row, str) else json.dumps(row) for row in rows]


def test_bad_lines_are_reported_with_their_numbers_and_fields():
    lines = _lines(
        {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"},
        "{not json",
        "",  # blank lines are not counted and keep the numbering
        {"prompt": "Hi", "chosen": "Hello"},
        ["a list"],
        {"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"},
    )
    with pytest.raises(ValidationFailed) as caught:
        items_parse(lines, fmt="trl")
    errors = caught.value.errors
    assert [error["line"] for error in errors] == [2, 4, 5, 6]
    assert errors[1]["field"] == "line 4: chosen"
    assert errors[2]["detail"] == "Each line must be a JSON object."
    assert errors[3]["field"] == "line 6: prompt[0].role"
    assert "Unknown role 'robot'" in errors[3]["detail"]
    assert caught.value.field == errors[0]["field"]


def test_skip_invalid_returns_the_good_items_and_the_bad_lines():
    lines = _lines(
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "Q2", "chosen": "   ", "rejected": "bad"},
        {"prompt": "Q3", "chosen": "good", "rejected": "bad"},
    )
    fmt, items, count, skipped = items_parse(lines, fmt="auto", skip_invalid=True)
    assert (fmt, count) == ("trl", 3)
    assert [item.line for item in items] == [1, 3]
    assert skipped == [
        {
            "line": 2,
            "field": "line 2: chosen",
            "detail": "A response must not be empty.",
        }
    ]


def test_at_most_twenty_bad_lines_are_reported():
    with pytest.raises(ValidationFailed) as caught:
        items_parse(["[]"] * 50)
    assert len(caught.value.errors) == 20


def test_a_file_without_lines_and_an_unknown_format_are_refused():
    with pytest.raises(ValidationFailed) as empty:
        items_parse(["", "  "])
    assert empty.value.field == "file"
    with pytest.raises(ValidationFailed) as unknown:
        items_parse(_lines({"responses": ["a"]}), fmt="csv")
    assert unknown.value.field == "format"


def test_a_line_over_the_byte_limit_is_refused_before_it_is_decoded(settings):
    settings.BALLOT_IMPORT_MAX_LINE_BYTES = 100
    line = json.dumps({"prompt": "x" * 200, "chosen": "a", "rejected": "b"})
    with pytest.raises(ValidationFailed) as caught:
        items_parse([line.encode()])
    assert "at most 100" in caught.value.errors[0]["detail"]


def test_hh_transcripts_split_into_prompt_and_replies_in_a_shuffled_order():
    row = {
        "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away.",
    }
    assert detect_format(row) == "hh"
    fmt, [item], _, _ = items_parse(_lines(row))
    assert fmt == "hh"
    assert item.conversation == [{"role": "user", "content": "Hi?"}]
    assert sorted(r["text"] for r in item.responses) == ["Go away.", "Hello!"]
    [label] = item.labels
    answer = label.answers[0]
    assert item.responses[answer["chosen"]]["text"] == "Hello!"
    assert item.responses[answer["rejected"]]["text"] == "Go away."
    assert item.derived_id and item.external_id.startswith("sha-")


def test_ranks_become_groups_of_positions_best_first():
    row = {"prompt": "Pick", "responses": ["a", "b", "c"], "ranks": [2, 1, 2], "id": "r1"}
    _, [item], _, _ = items_parse(_lines(row))
    assert item.external_id == "r1" and not item.derived_id
    assert item.labels[0].answers == [{"question": "ranking", "ranking": [[1], [0, 2]]}]


def test_a_non_finite_or_boolean_rating_names_its_aspect():
    with pytest.raises(ValidationFailed) as caught:
        items_parse(_lines({"prompt": "p", "response": "r", "ratings": {"overall": True}}))
    assert caught.value.errors[0]["field"] == "line 1: ratings[0].overall"


def test_labels_must_name_a_known_source_and_an_ai_label_its_judge():
    for entry, field in (
        ({"source": "robot", "answers": []}, "source"),
        ({"source": "ai", "answers": []}, "judge"),
    ):
        with pytest.raises(LineError) as caught:
            shapes.PARSERS["native"]({"prompt": "p", "responses": ["r"], "annotations": [entry]}, 1)
        assert caught.value.field == field
    assert {shapes.HUMAN, shapes.AI} == set(Source.values)


def test_repeated_lines_merge_new_annotators_labels_and_count_true_duplicates():
    def item(line: int, annotator: str, text: str = "r") -> ParsedItem:
        return ParsedItem(
            line=line,
            external_id="x",
            conversation=[{"role": "user", "content": "p"}],
            responses=[{"text": text, "model_name": "", "metadata": {}}],
            labels=[ParsedLabel(annotator, "human", "", None, [], line)],
        )

    unique, duplicates = items_merge_duplicates(
        [item(1, "ann"), item(2, "bob"), item(3, "ann"), item(4, "eve", text="other")]
    )
    assert duplicates == 2
    assert [label.annotator for label in unique["x"].labels] == ["ann", "bob"]


def test_id_less_lines_are_keyed_on_their_prompt_and_counted_per_prompt():
    _, items, _, _ = items_parse(
        _lines(
            {"prompt": "same", "chosen": "a", "rejected": "b"},
            {"prompt": "same", "chosen": "c", "rejected": "d"},
            {"prompt": "other", "chosen": "a", "rejected": "b"},
        )
    )
    items_derive_ids(items)
    first, second, third = (item.external_id for item in items)
    assert second == f"{first}-2" and third != first and "-" not in third[4:]


def test_the_fingerprint_changes_with_the_labels_but_not_with_key_order():
    def parsed(row: dict) -> ParsedItem:
        return items_parse([json.dumps(row)])[1][0]

    row = {"id": "i", "prompt": "p", "responses": ["a", "b"], "ranking": [1, 0]}
    same = {"ranking": [1, 0], "responses": ["a", "b"], "prompt": "p", "id": "i"}
    edited = {**row, "ranking": [0, 1]}
    assert item_fingerprint(parsed(row)) == item_fingerprint(parsed(same))
    assert item_fingerprint(parsed(row)) != item_fingerprint(parsed(edited))


@pytest.mark.parametrize("module", ["formats.py", "parser.py"])
def test_the_parser_modules_import_no_orm_and_no_models(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {
        name
        for name in imported
        if name.startswith(("django.db", "annotation.models", "annotation.services.imports.writer"))
    }

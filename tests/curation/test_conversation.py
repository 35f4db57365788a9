"""Conversation-to-text: one template, used by exports and curation jobs alike."""

from __future__ import annotations

import pytest

from curation.conversation import conversation_text
from curation.exports import FORMATS, ExportOptions, build_rows
from curation.records import PointwiseRow, PreferencePair, RankedList

MULTI_TURN = [
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3 + 3?"},
]


def record_for(format_name: str, prompt: list[dict]) -> object:
    if format_name == "ranked_list":
        return RankedList(
            item_id=1,
            external_id="x",
            prompt=prompt,
            responses=("It is 6.", "It is 7."),
            response_ids=(1, 2),
            scores=(1.0, 0.0),
            question="rank",
        )
    if format_name == "pointwise":
        return PointwiseRow(
            item_id=1,
            external_id="x",
            prompt=prompt,
            response="It is 6.",
            response_id=1,
            scores={"helpfulness": 3.0},
            question="rate",
        )
    return PreferencePair(
        item_id=1,
        external_id="x",
        prompt=prompt,
        chosen_text="It is 6.",
        rejected_text="It is 7.",
        chosen_response_id=1,
        rejected_response_id=2,
        kind="correction",
        question="better",
        segments=({"start": 6, "end": 7, "original": "7", "corrected": "6"},),
    )


def test_a_multi_turn_conversation_flattens_to_role_paragraphs_ending_with_the_assistant_cue():
    assert conversation_text(MULTI_TURN, assistant_cue=True) == (
        "user: What is 2 + 2?\n\nassistant: It is 4.\n\nuser: And 3 + 3?\n\nassistant: "
    )
    assert conversation_text(MULTI_TURN) == (
        "user: What is 2 + 2?\n\nassistant: It is 4.\n\nuser: And 3 + 3?"
    )


@pytest.mark.parametrize("format_name", FORMATS)
def test_every_format_ends_a_multi_turn_string_prompt_with_the_assistant_turn_marker(
    format_name: str,
) -> None:
    options = ExportOptions(aspects=("helpfulness",))
    rows = build_rows(format_name, record_for(format_name, MULTI_TURN), options)

    assert rows
    for row in rows:
        assert row["prompt"] == conversation_text(MULTI_TURN, assistant_cue=True)
        answer = row.get("chosen") or row.get("completion") or row.get("response")
        if answer is None:
            answer = row["responses"][0]
        # TRL concatenates prompt and answer: that must read as the whole conversation.
        assert row["prompt"] + answer == conversation_text(
            [*MULTI_TURN, {"role": "assistant", "content": answer}]
        )


def test_a_single_user_message_stays_plain_text_followed_by_the_separator() -> None:
    prompt = [{"role": "user", "content": "Hi"}]
    (row,) = build_rows("trl_preference", record_for("trl_preference", prompt), ExportOptions())
    assert row["prompt"] == "Hi\n\n"


def test_pairs_and_the_embedding_job_key_prompts_by_the_same_text(project) -> None:
    from annotation.models import Item
    from curation.jobs.kinds.embed import project_texts

    Item.objects.create(project=project, external_id="multi", conversation=MULTI_TURN)
    pair = record_for("trl_preference", MULTI_TURN)

    assert pair.prompt_text in project_texts(project)
    assert pair.prompt_text == conversation_text(MULTI_TURN)

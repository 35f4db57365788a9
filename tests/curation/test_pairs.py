"""The one pair builder: pairwise, rankings, ratings and corrections, aggregated over annotators."""

from __future__ import annotations

import json

import pytest

from annotation.models import (
    Annotation,
    CorrectionAnswer,
    PairwiseAnswer,
    RankingAnswer,
    RatingAnswer,
    Source,
)
from annotation.services import items_import, question_create
from curation.pairs import Selection, iter_pointwise_rows, iter_preference_pairs, iter_ranked_lists
from tests.factories import ItemFactory, ProjectFactory, UserFactory


@pytest.fixture
def setup(alice):
    project = ProjectFactory(created_by=alice)
    questions = {
        "pref": question_create(project=project, kind="pairwise", name="pref"),
        "rank": question_create(project=project, kind="ranking", name="rank"),
        "rate": question_create(
            project=project,
            kind="rating",
            name="rate",
            config={"aspects": ["overall"], "scale": {"min": 1, "max": 5}},
        ),
        "fix": question_create(project=project, kind="correction", name="fix", required=False),
    }
    item = ItemFactory(project=project, responses=["alpha answer", "beta answer", "gamma answer"])
    responses = list(item.responses.order_by("position"))
    users = [UserFactory(username=f"u{i}") for i in range(3)]
    return project, questions, item, responses, users


def _annotation(project, item, user, source=Source.HUMAN):
    return Annotation.objects.create(
        project=project,
        item=item,
        annotator=user if source == Source.HUMAN else None,
        source=source,
        judge_name="" if source == Source.HUMAN else "judge-x",
    )


def test_pairwise_votes_are_aggregated_by_majority_with_agreement(setup):
    project, q, item, r, users = setup
    for user, (chosen, rejected) in zip(
        users, [(r[0], r[1]), (r[0], r[1]), (r[1], r[0])], strict=True
    ):
        PairwiseAnswer.objects.create(
            annotation=_annotation(project, item, user),
            question=q["pref"],
            chosen=chosen,
            rejected=rejected,
            strength=2,
        )
    pairs = list(iter_preference_pairs(project=project))
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair.chosen_response_id, pair.rejected_response_id) == (r[0].id, r[1].id)
    assert pair.agreement == pytest.approx(2 / 3) and pair.votes == 3 and pair.margin == 2
    assert len(pair.annotators) == 3 and all(a.startswith("ann-") for a in pair.annotators)
    assert (
        list(iter_preference_pairs(project=project, selection=Selection(aggregation="unanimous")))
        == []
    )
    assert (
        list(iter_preference_pairs(project=project, selection=Selection(min_agreement=0.7))) == []
    )
    every = list(iter_preference_pairs(project=project, selection=Selection(aggregation="all")))
    assert len(every) == 3 and sum(p.weight for p in every) == pytest.approx(1.0)


def test_ties_are_kept_apart_and_split_votes_dropped(setup):
    project, q, item, r, users = setup
    PairwiseAnswer.objects.create(
        annotation=_annotation(project, item, users[0]),
        question=q["pref"],
        chosen=r[0],
        rejected=r[1],
        tie=True,
    )
    pairs = list(iter_preference_pairs(project=project))
    assert len(pairs) == 1 and pairs[0].tie
    PairwiseAnswer.objects.create(
        annotation=_annotation(project, item, users[1]),
        question=q["pref"],
        chosen=r[0],
        rejected=r[1],
    )
    # One tie vote and one for r0: a split, no preference.
    assert list(iter_preference_pairs(project=project)) == []


def test_a_ranking_gives_all_pairs_weighted_by_one_over_k_choose_two(setup):
    project, q, item, r, users = setup
    RankingAnswer.objects.create(
        annotation=_annotation(project, item, users[0]),
        question=q["rank"],
        ranking=[[r[2].id], [r[0].id], [r[1].id]],
    )
    pairs = list(iter_preference_pairs(project=project))
    assert len(pairs) == 3
    assert {(p.chosen_response_id, p.rejected_response_id) for p in pairs} == {
        (r[2].id, r[0].id),
        (r[2].id, r[1].id),
        (r[0].id, r[1].id),
    }
    assert all(p.weight == pytest.approx(1 / 3) and p.kind == "ranking" for p in pairs)
    ranked = list(iter_ranked_lists(project=project))
    assert ranked[0].response_ids == (r[2].id, r[0].id, r[1].id)


def test_ratings_become_pairs_only_past_the_threshold_with_the_gap_as_margin(setup):
    project, q, item, r, users = setup
    annotation = _annotation(project, item, users[0])
    for response, value in zip(r, [5, 4, 1], strict=True):
        RatingAnswer.objects.create(
            annotation=annotation,
            question=q["rate"],
            response=response,
            aspect="overall",
            value=value,
        )
    pairs = list(iter_preference_pairs(project=project, selection=Selection(rating_threshold=0.5)))
    # Normalised scores 1.0, 0.75, 0.0: only gaps >= 0.5 make pairs.
    assert {(p.chosen_response_id, p.rejected_response_id) for p in pairs} == {
        (r[0].id, r[2].id),
        (r[1].id, r[2].id),
    }
    assert sorted(p.margin for p in pairs) == pytest.approx([0.75, 1.0])
    rows = list(iter_pointwise_rows(project=project))
    assert [row.scores["overall"] for row in rows] == [5, 4, 1]


def test_a_correction_gives_the_corrected_text_over_the_original(setup):
    project, q, item, r, users = setup
    annotation = _annotation(project, item, users[0])
    CorrectionAnswer.objects.create(
        annotation=annotation,
        question=q["fix"],
        response=r[0],
        start=0,
        end=5,
        original_text="alpha",
        corrected_text="ALPHA",
        category="factual",
    )
    pairs = [p for p in iter_preference_pairs(project=project) if p.kind == "correction"]
    assert len(pairs) == 1
    assert pairs[0].chosen_text == "ALPHA answer" and pairs[0].rejected_text == "alpha answer"
    assert pairs[0].segments[0]["start"] == 0 and pairs[0].segments[0]["corrected"] == "ALPHA"


def test_ai_labels_are_included_only_when_asked(setup):
    project, q, item, r, users = setup
    PairwiseAnswer.objects.create(
        annotation=_annotation(project, item, None, Source.AI),
        question=q["pref"],
        chosen=r[0],
        rejected=r[1],
    )
    assert list(iter_preference_pairs(project=project)) == []
    both = list(iter_preference_pairs(project=project, selection=Selection(source="both")))
    assert len(both) == 1 and both[0].source == "ai" and both[0].annotators == ("judge:judge-x",)


def test_imported_hh_pairs_come_back_out_unchanged(alice):
    from tests.datasets import dataset

    path = dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl"
    project = ProjectFactory(created_by=alice)
    lines = path.read_text().splitlines()[:200]
    # Line 87 has an empty chosen reply: the importer leaves it out when asked to.
    result = items_import(project=project, lines=lines, fmt="hh", skip_invalid=True)
    bad = {error["line"] for error in result.invalid_lines}
    lines = [line for number, line in enumerate(lines, start=1) if number not in bad]
    pairs = list(iter_preference_pairs(project=project))
    assert len(pairs) == len(lines) == 199
    for line, pair in zip(lines, pairs, strict=True):
        row = json.loads(line)
        assert row["chosen"].endswith(pair.chosen_text) and row["rejected"].endswith(
            pair.rejected_text
        )

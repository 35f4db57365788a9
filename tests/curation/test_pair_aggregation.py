"""Vote aggregation on its own: plain votes in, named aggregated pairs out, no database."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from curation.pairs import AggregatedPair, Vote, aggregate_votes
from curation.pairs import aggregation as agg

PACKAGE = Path(agg.__file__).parent


def _vote(preferred: int | None, who: str, *, margin: float | None = None, source: str = "human"):
    # Votes on the pair (1, 2); a tie reads as (1, 2).
    other = 2 if preferred in (1, None) else 1
    return Vote(preferred, other, 1, margin, 1.0, who, source)


def test_the_aggregate_is_a_frozen_record_with_named_fields():
    [pair] = aggregate_votes([_vote(2, "a", margin=2.0), _vote(2, "b"), _vote(1, "c")])
    assert [f.name for f in dataclasses.fields(AggregatedPair)] == [
        "chosen",
        "rejected",
        "tie",
        "margin",
        "weight",
        "agreement",
        "votes",
        "annotators",
        "source",
    ]
    assert (pair.chosen, pair.rejected, pair.tie) == (2, 1, False)
    assert pair.agreement == pytest.approx(2 / 3) and pair.votes == 3
    assert pair.margin == 2.0  # the mean over the winning votes that gave one
    assert pair.annotators == ("a", "b", "c") and pair.source == "human"
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.chosen = 1  # type: ignore[misc]


def test_a_split_vote_and_a_short_agreement_give_nothing():
    assert aggregate_votes([_vote(1, "a"), _vote(2, "b")]) == []
    votes = [_vote(1, "a"), _vote(1, "b"), _vote(2, "c")]
    assert aggregate_votes(votes, aggregation="unanimous") == []
    assert aggregate_votes(votes, min_agreement=0.7) == []
    assert aggregate_votes([]) == []


def test_a_majority_tie_is_a_tie_between_the_pair_in_id_order():
    [pair] = aggregate_votes([_vote(None, "a"), _vote(None, "b", source="ai"), _vote(2, "c")])
    assert (pair.chosen, pair.rejected, pair.tie, pair.margin) == (1, 2, True, None)
    assert pair.source == "mixed"


def test_all_keeps_every_vote_weighted_by_one_over_the_votes():
    pairs = aggregate_votes([_vote(1, "a"), _vote(2, "b"), _vote(None, "c")], aggregation="all")
    assert [(p.chosen, p.rejected, p.tie, p.annotators) for p in pairs] == [
        (1, 2, False, ("a",)),
        (2, 1, False, ("b",)),
        (1, 2, True, ("c",)),
    ]
    assert sum(p.weight for p in pairs) == pytest.approx(1.0)


def test_a_ranking_votes_on_every_pair_with_weight_one_over_k_choose_two():
    votes = dict(agg.ranking_votes([[30], [10, 20]], annotator="a", source="human"))
    assert set(votes) == {"10-20", "10-30", "20-30"}
    assert votes["10-20"].preferred is None  # tied in the ranking
    assert votes["10-30"].preferred == 30 and votes["10-30"].margin == 1.0
    assert all(v.weight == pytest.approx(1 / 3) for v in votes.values())


def test_ratings_vote_only_past_the_threshold():
    means = {1: agg.normalised(5, {"min": 1, "max": 5}), 2: 0.75, 3: 0.0}
    votes = dict(agg.rating_votes(means, threshold=0.5, annotator="a", source="human"))
    assert votes["1-2"].preferred is None
    assert (votes["1-3"].preferred, votes["1-3"].margin) == (1, 1.0)
    assert (votes["2-3"].preferred, votes["2-3"].margin) == (2, 0.75)


def test_borda_scores_share_points_between_tied_responses():
    scores = agg.borda_scores([[[1], [2, 3]], [[2], [1], [3]]])
    assert scores == {1: pytest.approx(1.5), 2: pytest.approx(1.25), 3: pytest.approx(0.25)}
    assert agg.first_choice_agreement([[[1], [2]], [[1], [2]], [[2, 1]]]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("module", ["aggregation.py", "rows.py"])
def test_the_pure_modules_import_only_the_standard_library(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= {"__future__", "collections", "dataclasses", "itertools", "typing"}

"""The adaptive-overlap rule: when an item asks for one more vote."""

from __future__ import annotations

import pytest

from models_gpu.overlap import needs_another_vote, vote_agreement

RULE = {"min_votes": 3, "max_votes": 5, "agreement_threshold": 0.75}


def test_under_the_minimum_an_item_always_asks_for_another_vote():
    assert needs_another_vote({"a": 2}, **RULE)
    assert needs_another_vote({}, **RULE)


def test_unanimous_votes_close_an_item_at_the_minimum():
    assert not needs_another_vote({"a": 3}, **RULE)


def test_split_votes_ask_for_more_until_the_maximum():
    assert needs_another_vote({"a": 2, "b": 1}, **RULE)
    assert needs_another_vote({"a": 2, "b": 2}, **RULE)
    assert not needs_another_vote({"a": 3, "b": 2}, **RULE)


def test_three_of_four_meets_a_threshold_of_three_quarters():
    assert not needs_another_vote({"a": 3, "b": 1}, **RULE)
    assert needs_another_vote({"a": 3, "b": 1}, **{**RULE, "agreement_threshold": 0.8})


def test_a_tie_is_a_label_of_its_own():
    # Two ties and one vote for A do not agree on A.
    assert vote_agreement({None: 2, 7: 1}) == pytest.approx(2 / 3)
    assert needs_another_vote({None: 2, 7: 1}, **RULE)


def test_ratings_agree_by_their_spread_on_the_scale():
    close = vote_agreement({4.0: 2, 5.0: 1}, ordinal=True, scale=(1, 5))
    far = vote_agreement({1.0: 1, 4.0: 1, 5.0: 1}, ordinal=True, scale=(1, 5))
    assert close == pytest.approx(1 - (1 / 3) / 2)
    assert far == pytest.approx(1 - (4 / 3) / 2)
    assert not needs_another_vote({4.0: 2, 5.0: 1}, ordinal=True, scale=(1, 5), **RULE)
    assert needs_another_vote({1.0: 1, 4.0: 1, 5.0: 1}, ordinal=True, scale=(1, 5), **RULE)
    with pytest.raises(ValueError):
        vote_agreement({1.0: 1}, ordinal=True)


def test_low_confidence_asks_for_another_vote_even_when_votes_agree():
    rule = {**RULE, "confidence_threshold": 0.9}
    assert needs_another_vote({"a": 3}, confidence=0.6, **rule)
    assert not needs_another_vote({"a": 3}, confidence=0.95, **rule)
    # Never past the maximum.
    assert not needs_another_vote({"a": 5}, confidence=0.1, **rule)


def test_an_empty_range_is_refused():
    with pytest.raises(ValueError):
        needs_another_vote({"a": 1}, min_votes=4, max_votes=3, agreement_threshold=0.5)

"""The schemathesis budget shared by ``make check`` and the suite's quick pass."""

from __future__ import annotations

from checks.fuzz import examples_within_budget


def test_the_first_operation_gets_the_most_examples():
    assert examples_within_budget(budget=30, elapsed=0, done=0, left=80, most=6) == 6


def test_operations_slower_than_the_budget_allows_cut_the_rest_down_to_the_floor():
    # 10 operations took 10 s of a 30 s budget: the other 70 at that pace would need 70 s.
    assert examples_within_budget(budget=30, elapsed=10, done=10, left=70, most=6) == 2
    # Over budget: never under the floor, so every operation still runs.
    assert examples_within_budget(budget=30, elapsed=40, done=40, left=40, most=6, least=3) == 3


def test_operations_faster_than_the_budget_keep_every_example():
    assert examples_within_budget(budget=30, elapsed=1, done=40, left=40, most=25) == 25
    # Half the pace the budget allows: half the examples.
    assert examples_within_budget(budget=60, elapsed=20, done=20, left=80, most=10) == 5

"""Schemathesis over every operation, shared by ``make check`` (checks/bad_input.py, deep, on
the production shape) and the suite's quick pass (tests/security/test_schemathesis.py).

One operation at a time: Hypothesis with no shrinking and no example database,
derandomised, path parameters pinned to rows that exist, and the number of examples per
operation cut when the operations so far ran slower than the budget allows (never under a
floor), so every operation gets its turn within the budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import requests


def examples_within_budget(
    *, budget: float, elapsed: float, done: int, left: int, most: int, least: int = 2
) -> int:
    """Examples per mode for the next operation, so the ``left`` ones fit in what is left."""
    if not done:
        return most
    affordable = (budget - elapsed) / (left * (elapsed / done))
    return max(least, min(most, int(most * affordable)))


def modes(operation: Any) -> list:
    """Positive always; negative only where there is a body or a query to make invalid
    (with path parameters pinned and the token set, Hypothesis would only spin)."""
    from schemathesis import GenerationMode

    found = [GenerationMode.POSITIVE]
    if list(operation.body) or list(operation.query):
        found.append(GenerationMode.NEGATIVE)
    return found


def drive(
    operation: Any,
    *,
    examples: int,
    pinned: dict,
    headers: dict,
    base_url: str,
    session: requests.Session,
    checks: list,
    on_failure: Callable[[Any, Any, BaseException], None],
    on_request: Callable[[], None] = lambda: None,
    after_mode: Callable[[], None] = lambda: None,
) -> None:
    """Send up to ``examples`` generated requests to ``operation`` in each of :func:`modes`;
    every failing one is passed to ``on_failure(mode, case, exception)``, none is raised (one
    must not hide the rest). ``after_mode`` runs after each mode."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    for mode in modes(operation):

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
        # Called at once, inside this iteration: ``mode`` is this loop's.
        def exercise(case) -> None:
            on_request()
            try:
                case.call_and_validate(
                    base_url=base_url, session=session, headers=headers, checks=checks, timeout=30
                )
            except (Exception, BaseExceptionGroup) as exc:  # collected, not raised
                on_failure(mode, case, exc)  # noqa: B023

        # Unsatisfiable: nothing in this operation can be made invalid.
        negative = mode is GenerationMode.NEGATIVE
        with contextlib.suppress(Unsatisfiable) if negative else contextlib.nullcontext():
            exercise()
        after_mode()

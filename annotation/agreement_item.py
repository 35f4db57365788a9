"""Per-item agreement of the human pairwise judgements, as the explorer shows it.

For each question, the share of judgements that match its most frequent answer (a tie
is one answer whatever the order of its two responses), pooled over questions: the sum
of each question's majority count over the number of judgements. Below two judgements
there is nothing to agree on and the figure is empty (``None``).

Pure: no Django. ``annotation.services.agreement`` stores the figure on ``Item.agreement``
and the migration that introduced the column fills old rows with the same function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable

MIN_JUDGEMENTS = 2

# The answer of a tie: which response was listed first carries nothing.
TIE = None


def pairwise_choice(*, chosen_id: int, tie: bool) -> int | None:
    """The answer a pairwise judgement gives: the chosen response, or ``TIE``."""
    return TIE if tie else chosen_id


def item_agreement(votes: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Agreement of one item's human pairwise votes, each ``(question_id, choice)``.

    ``choice`` is ``pairwise_choice(...)``. Returns ``None`` under two votes.
    """
    per_question: dict[Hashable, Counter] = {}
    for question, choice in votes:
        per_question.setdefault(question, Counter())[choice] += 1
    total = sum(sum(counts.values()) for counts in per_question.values())
    if total < MIN_JUDGEMENTS:
        return None
    top = sum(max(counts.values()) for counts in per_question.values())
    # One correctly rounded division: 3/5 is the same double as the literal 0.6, so a
    # range filter typed as decimals matches exactly what a reader computes by hand.
    return top / total

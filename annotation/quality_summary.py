"""What the quality charts keep per agreement unit, per annotator pair and per annotator.

Pure: no Django. The writers read one item's human votes under the item's row lock
and pass them here (``annotation.services.quality``); the migration that introduced
the summary tables and the rebuild command pass whole projects the same way, so a
summary written on submit and one rebuilt from scratch come from the same code.

Units match the quality report's: pairwise (item, lower response id, higher response
id) with the choice as ``lo``, ``hi`` or ``tie``; ratings (item, response, aspect) with
the value rounded to a whole point (half away from zero) as the nominal label and the
exact value for the interval metric; rankings (item) with the response ranked first.

Three kinds of figure, each a sum over units or votes, so a writer adds the
difference its new annotations make (the item's figures with them minus without):

- ``unit_sums``: per question, day of the unit's last vote, unit size and label, the
  sums over units that Krippendorff's alpha and Fleiss' kappa are computed from.
- ``pair_counts``: per question and annotator pair, how often they gave each pair of
  labels to a shared unit (Cohen's kappa per pair).
- ``annotator_outcomes``: per annotator, units agreeing with the majority of the
  other annotators and units where the others had a majority (nominal questions).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PAIRWISE = "pairwise"
RATING = "rating"
RANKING = "ranking"
# Questions whose agreement with the majority the annotator table pools (ratings are
# interval data: the quality report leaves them out of the majority rule).
MAJORITY_KINDS = (PAIRWISE, RANKING)
# Questions given a Cohen's kappa per annotator pair. A ranking's label is a response
# id, different on every item, so a chance agreement across items means nothing.
COHEN_KINDS = (PAIRWISE, RATING)


@dataclass(frozen=True)
class Vote:
    """One human answer to one unit."""

    annotation_id: int
    annotator_id: int
    created_at: datetime
    question_id: int
    kind: str
    item_id: int
    unit_a: int
    unit_b: int
    aspect: str
    value: str
    number: float | None = None

    @property
    def unit(self) -> tuple[int, int, int, int, str]:
        return (self.question_id, self.item_id, self.unit_a, self.unit_b, self.aspect)


def whole_point(value: float) -> str:
    """A rating's nominal label: the value rounded to a whole point, halves away from zero."""
    rounded = math.floor(abs(value) + 0.5)
    return str(int(math.copysign(rounded, value)) if rounded else 0)


def pairwise_vote(*, chosen_id: int, rejected_id: int, tie: bool, **common: Any) -> Vote:
    low, high = sorted((chosen_id, rejected_id))
    value = "tie" if tie else ("lo" if chosen_id == low else "hi")
    return Vote(kind=PAIRWISE, unit_a=low, unit_b=high, aspect="", value=value, **common)


def rating_vote(*, response_id: int, aspect: str, value: float, **common: Any) -> Vote:
    return Vote(
        kind=RATING,
        unit_a=response_id,
        unit_b=0,
        aspect=aspect,
        value=whole_point(value),
        number=float(value),
        **common,
    )


def ranking_vote(*, ranking: Any, **common: Any) -> Vote | None:
    """The vote of a ranking: its first response (``None`` for a malformed ranking)."""
    try:
        first = ranking[0]
        top = first[0] if isinstance(first, list) else first
    except (IndexError, KeyError, TypeError):
        return None
    return Vote(kind=RANKING, unit_a=0, unit_b=0, aspect="", value=str(top), **common)


def _by_unit(votes: Iterable[Vote]) -> dict[tuple, list[Vote]]:
    units: dict[tuple, list[Vote]] = defaultdict(list)
    for vote in votes:
        units[vote.unit].append(vote)
    return units


# --------------------------------------------------------------------------- units


def unit_sums(votes: Iterable[Vote]) -> dict[tuple, list[float]]:
    """What the units voted on add to the agreement sums, per (question, day, m, label).

    ``day`` is the UTC date of the unit's last vote (a unit belongs to the period in
    which it became what it is now), ``m`` its number of votes; units with one vote
    cannot be paired and add nothing. Each entry is ``[votes, votes², Σ values,
    Σ values², observed]``: the votes for the label, their square (summed over units,
    Σ n² is what alpha and Fleiss' kappa need), the sum and sum of squares of their
    exact values (ratings), and the unit's interval disagreement ``(m·Σv² - (Σv)²)/(m-1)``
    on the row of its lowest label only, so a sum over rows counts each unit once.
    """
    sums: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for (question, *_), unit_votes in _by_unit(votes).items():
        size = len(unit_votes)
        if size < 2:
            continue
        day = max(v.created_at for v in unit_votes).astimezone(UTC).date()
        numbers = [v.number for v in unit_votes if v.number is not None]
        observed = 0.0
        if len(numbers) == size:
            total, squares = sum(numbers), sum(n * n for n in numbers)
            observed = (size * squares - total * total) / (size - 1)
        labels: dict[str, list[float]] = defaultdict(list)
        for vote in unit_votes:
            labels[vote.value].append(vote.number if vote.number is not None else 0.0)
        lowest = min(labels)
        for label, values in labels.items():
            entry = sums[(question, day, size, label)]
            entry[0] += len(values)
            entry[1] += len(values) ** 2
            entry[2] += sum(values)
            entry[3] += sum(v * v for v in values)
            entry[4] += observed if label == lowest else 0.0
    return sums


def sums_difference(
    after: dict[tuple, list[float]], before: dict[tuple, list[float]]
) -> dict[tuple, list[float]]:
    """``after - before`` entry by entry, leaving out entries that do not change."""
    out = {}
    for key in set(after) | set(before):
        new = after.get(key, [0, 0, 0.0, 0.0, 0.0])
        old = before.get(key, [0, 0, 0.0, 0.0, 0.0])
        change = [a - b for a, b in zip(new, old, strict=True)]
        if any(change):
            out[key] = change
    return out


# --------------------------------------------------------------------------- pairs


def pair_counts(votes: Iterable[Vote]) -> Counter:
    """``(question, annotator_a, annotator_b, value_a, value_b) -> shared units``, a < b."""
    counts: Counter = Counter()
    for unit_votes in _by_unit(v for v in votes if v.kind in COHEN_KINDS).values():
        ordered = sorted(unit_votes, key=lambda v: v.annotator_id)
        for index, first in enumerate(ordered):
            for second in ordered[index + 1 :]:
                counts[
                    (
                        first.question_id,
                        first.annotator_id,
                        second.annotator_id,
                        first.value,
                        second.value,
                    )
                ] += 1
    return counts


# --------------------------------------------------------------------------- annotators


def annotator_outcomes(votes: Iterable[Vote]) -> dict[int, list[int]]:
    """``annotator -> [units agreeing with the others' majority, units with such a majority]``.

    The rule of ``curation.agreement.annotator_majority_agreement``: the annotator's own
    vote is left out; a unit counts when one label has strictly the most of the other
    votes. Pairwise and ranking questions only.
    """
    outcomes: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for unit_votes in _by_unit(v for v in votes if v.kind in MAJORITY_KINDS).values():
        if len(unit_votes) < 2:
            continue
        tally = Counter(v.value for v in unit_votes)
        for vote in unit_votes:
            tally[vote.value] -= 1
            top = tally.most_common(2)
            if top[0][1] > 0 and (len(top) == 1 or top[0][1] > top[1][1]):
                outcomes[vote.annotator_id][1] += 1
                outcomes[vote.annotator_id][0] += top[0][0] == vote.value
            tally[vote.value] += 1
    return outcomes


def gold_truth(
    gold_answer: Any, *, questions: Mapping[Any, int], positions: Mapping[int, int]
) -> dict[tuple[int, int, int], str]:
    """``(question, lower response id, higher response id) -> lo | hi | tie`` of a gold item.

    ``questions`` maps a question's id and name to its id (pairwise questions only);
    ``positions`` maps a response position to its id. Answers naming an unknown question
    or response are ignored, as the quality report ignores them.
    """
    truth: dict[tuple[int, int, int], str] = {}
    answers = gold_answer.get("answers", []) if isinstance(gold_answer, dict) else []
    for answer in answers:
        if not isinstance(answer, dict):
            continue
        question = questions.get(answer.get("question"))
        chosen = positions.get(answer.get("chosen"))
        rejected = positions.get(answer.get("rejected"))
        if question is None or chosen is None or rejected is None or chosen == rejected:
            continue
        low, high = sorted((chosen, rejected))
        truth[(question, low, high)] = (
            "tie" if answer.get("tie") else ("lo" if chosen == low else "hi")
        )
    return truth


def gold_scores(
    votes: Iterable[Vote], truth: Mapping[tuple[int, int, int], str]
) -> dict[int, list[int]]:
    """``annotator -> [correct, scored]`` of pairwise votes on a gold item's known pairs."""
    scores: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for vote in votes:
        if vote.kind != PAIRWISE:
            continue
        expected = truth.get((vote.question_id, vote.unit_a, vote.unit_b))
        if expected is None:
            continue
        scores[vote.annotator_id][1] += 1
        scores[vote.annotator_id][0] += vote.value == expected
    return scores


# --------------------------------------------------------------------------- time


def time_bucket(milliseconds: int) -> int:
    """The bucket a time spent falls in, as its lower bound in milliseconds.

    A tenth of a second under 10 s, a second under 10 minutes, a minute beyond: the
    annotator table's median time is the median of these lower bounds.
    """
    if milliseconds < 10_000:
        step = 100
    elif milliseconds < 600_000:
        step = 1000
    else:
        step = 60_000
    return milliseconds - milliseconds % step


def bucket_median(buckets: Iterable[tuple[int, int]]) -> float | None:
    """Median of ``(value, count)`` pairs (the mean of the two middle values for an even count)."""
    ordered = sorted((value, count) for value, count in buckets if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    wanted = [(total - 1) // 2, total // 2]
    found: list[float] = []
    seen = 0
    for value, count in ordered:
        while wanted and wanted[0] < seen + count:
            found.append(value)
            wanted.pop(0)
        seen += count
    return (found[0] + found[1]) / 2

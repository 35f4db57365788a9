"""Votes and their aggregation: pure functions, no Django.

A *vote* is one annotator's preference on one unordered pair of responses (or a
tie). Every answer kind is turned into votes here (pairwise answers, K-way
rankings, ratings), the votes on one pair are aggregated into labelled pairs, and
rankings are scored by Borda count. The pair builder feeds these functions rows
loaded from the database; a notebook or a test can feed them plain values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

# ``adjudicated`` is majority, except on items a curator resolved: their label replaces
# the votes of the questions it answers, and a dropped item is left out (see loading).
# ``reliability`` takes the posterior label of the latest reliability job (see building).
AGGREGATIONS = ("majority", "unanimous", "all", "adjudicated", "reliability")
# Pairwise classes of a reliability fit, oriented by response id (``Vote.first`` is the lower).
LOWER_BETTER, HIGHER_BETTER, TIE = 0, 1, 2


@dataclass(slots=True)
class Vote:
    """One annotator's vote on an unordered pair of responses.

    ``first`` is the smaller response id of the pair; for a tie ``preferred`` is
    ``None`` and ``other`` the larger id, so a tie reads as (``first``, ``other``).
    """

    preferred: int | None
    other: int
    first: int
    margin: float | None
    weight: float
    annotator: str
    source: str


@dataclass(frozen=True, slots=True)
class AggregatedPair:
    """The label that a pair's votes agree on (one per vote with ``aggregation="all"``)."""

    chosen: int
    rejected: int
    tie: bool
    margin: float | None  # mean margin of the winning votes; None when none gave one
    weight: float
    agreement: float  # share of the votes that agree with this label
    votes: int
    annotators: tuple[str, ...]  # everyone who voted on the pair, sorted
    source: str  # human | ai | mixed


def combined_source(sources: Collection[str]) -> str:
    """The one source of a set of votes, or ``mixed`` when humans and judges both voted."""
    return next(iter(sources)) if len(set(sources)) == 1 else "mixed"


def pair_key(first: int, second: int) -> str:
    """The key of an unordered pair of responses (``first`` < ``second``)."""
    return f"{first}-{second}"


def pairwise_vote(
    *,
    chosen: int,
    rejected: int,
    tie: bool,
    strength: float | None,
    annotator: str,
    source: str,
) -> tuple[str, Vote]:
    """A pairwise answer as a vote, with its pair key; its strength is the margin."""
    first, second = sorted((chosen, rejected))
    vote = Vote(
        None if tie else chosen,
        second if tie else rejected,
        first,
        strength,
        1.0,
        annotator,
        source,
    )
    return pair_key(first, second), vote


def ranking_votes(
    ranking: Sequence[Sequence[int]], *, annotator: str, source: str
) -> list[tuple[str, Vote]]:
    """A K-way ranking (groups of tied response ids, best first) as C(K,2) votes.

    Each vote weighs 1/C(K,2), so a ranking counts as much as one pairwise answer
    for its prompt; the margin is the distance between the two ranks.
    """
    position = {rid: rank for rank, group in enumerate(ranking) for rid in group}
    total = len(position)
    weight = 1.0 / (total * (total - 1) / 2) if total > 1 else 1.0
    out = []
    for a, b in combinations(sorted(position), 2):
        if position[a] == position[b]:
            preferred, other = None, b
        elif position[a] < position[b]:
            preferred, other = a, b
        else:
            preferred, other = b, a
        margin = float(abs(position[a] - position[b])) if preferred is not None else None
        out.append((pair_key(a, b), Vote(preferred, other, a, margin, weight, annotator, source)))
    return out


def normalised(value: float, scale: Mapping) -> float:
    """A rating on a 0-1 scale (``scale`` has ``min`` and ``max``; a flat scale gives 0)."""
    low, high = float(scale["min"]), float(scale["max"])
    return (value - low) / (high - low) if high > low else 0.0


def rating_votes(
    means: Mapping[int, float], *, threshold: float, annotator: str, source: str
) -> list[tuple[str, Vote]]:
    """One annotator's mean normalised score per response as a vote per response pair.

    A gap under ``threshold`` is a tie (no preference); otherwise the gap is the margin.
    """
    out = []
    for a, b in combinations(sorted(means), 2):
        gap = means[a] - means[b]
        if abs(gap) < threshold:
            preferred, other, margin = None, b, None
        else:
            preferred, other = (a, b) if gap > 0 else (b, a)
            margin = abs(gap)
        out.append((pair_key(a, b), Vote(preferred, other, a, margin, 1.0, annotator, source)))
    return out


def aggregate_votes(
    votes: Sequence[Vote], *, aggregation: str = "majority", min_agreement: float = 0.0
) -> list[AggregatedPair]:
    """Aggregate the votes on one unordered pair.

    ``majority``: the most voted direction (or tie), its vote share as ``agreement``;
    a split vote carries no preference and gives nothing. ``unanimous``: only when
    every vote agrees. ``all``: every vote is its own pair, weighted 1/votes.
    ``reliability`` needs a fit's posterior (:func:`posterior_pair`); without one it
    counts votes like ``majority``.
    A label whose agreement is under ``min_agreement`` is dropped.
    """
    if not votes:
        return []
    source = combined_source({v.source for v in votes})
    annotators = tuple(sorted({v.annotator for v in votes}))
    if aggregation == "all":
        return [
            AggregatedPair(
                chosen=vote.preferred if vote.preferred is not None else vote.first,
                rejected=vote.other,
                tie=vote.preferred is None,
                margin=vote.margin,
                weight=vote.weight / len(votes),
                agreement=1.0,
                votes=1,
                annotators=(vote.annotator,),
                source=vote.source,
            )
            for vote in votes
        ]
    ranked = Counter(v.preferred for v in votes).most_common()
    winner, top = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == top:
        return []
    agreement = top / len(votes)
    if aggregation == "unanimous" and agreement < 1.0:
        return []
    if agreement < min_agreement:
        return []
    winners = [v for v in votes if v.preferred == winner]
    sample = winners[0]
    if winner is None:
        chosen, margin = sample.first, None
    else:
        margins = [v.margin for v in winners if v.margin is not None]
        chosen, margin = winner, (sum(margins) / len(margins) if margins else None)
    return [
        AggregatedPair(
            chosen=chosen,
            rejected=sample.other,
            tie=winner is None,
            margin=margin,
            weight=sum(v.weight for v in winners) / len(winners),
            agreement=agreement,
            votes=len(votes),
            annotators=annotators,
            source=source,
        )
    ]


def posterior_pair(
    votes: Sequence[Vote], *, label: int, confidence: float, min_agreement: float = 0.0
) -> list[AggregatedPair]:
    """The label a reliability fit gives a pair, its posterior probability as ``agreement``.

    ``label`` is the fit's class (``LOWER_BETTER``, ``HIGHER_BETTER`` or ``TIE``); a tie
    carries no preference and gives a tied pair, as the majority's tie does. The margin
    and weight come from the votes that agree with the label (all votes when none do:
    the fit may overrule every vote, e.g. when the only voters are known to flip).
    """
    if not votes or confidence < min_agreement:
        return []
    first = votes[0].first
    second = votes[0].other if votes[0].preferred in (None, first) else votes[0].preferred
    if label == TIE:
        winner, chosen, rejected = None, first, second
    else:
        chosen, rejected = (first, second) if label == LOWER_BETTER else (second, first)
        winner = chosen
    winners = [v for v in votes if v.preferred == winner] or list(votes)
    margins = [v.margin for v in winners if v.margin is not None and winner is not None]
    return [
        AggregatedPair(
            chosen=chosen,
            rejected=rejected,
            tie=label == TIE,
            margin=sum(margins) / len(margins) if margins else None,
            weight=sum(v.weight for v in winners) / len(winners),
            agreement=confidence,
            votes=len(votes),
            annotators=tuple(sorted({v.annotator for v in votes})),
            source=combined_source({v.source for v in votes}),
        )
    ]


def borda_scores(rankings: Iterable[Sequence[Sequence[int]]]) -> dict[int, float]:
    """Summed Borda points per response id, each ranking's points scaled to 0-1.

    Tied responses share the mean of their positions' points.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        total = sum(len(group) for group in ranking)
        seen = 0
        for group in ranking:
            points = sum(total - 1 - (seen + i) for i in range(len(group))) / len(group)
            for rid in group:
                scores[rid] = scores.get(rid, 0.0) + points / max(total - 1, 1)
            seen += len(group)
    return scores


def first_choice_agreement(rankings: Sequence[Sequence[Sequence[int]]]) -> float:
    """The share of rankings that put the most common single first choice first (0 when none)."""
    first_choices = Counter(r[0][0] for r in rankings if r and len(r[0]) == 1)
    return first_choices.most_common(1)[0][1] / len(rankings) if first_choices else 0.0

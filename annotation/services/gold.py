"""Gold items: does an answer match the expected one, and how does an annotator fare on them.

A gold item's ``gold_answer`` is ``{"answers": [...]}`` in the import's shape, responses
named by position. An answer is scored per gold answer whose question it answers:

- pairwise: the same direction, or a tie for a tie (strength is not scored);
- ranking: the same order of tie groups;
- rating: every cell the gold answer gives has the same value;
- corrections are not scored (several fixes of one text can all be right).

A submission *matches* when every scored answer matches; it is not scored (``None``)
when no gold answer could be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import (
    Annotation,
    Project,
    Question,
    QuestionKind,
    Response,
    Source,
)

RECENT_GOLD = 5


@dataclass(frozen=True)
class GoldCheck:
    """The outcome of one submission on a gold item: ``matched`` is None when nothing was scored."""

    matched: bool | None
    mismatched: tuple[str, ...]  # names of the questions answered otherwise


def _position_ids(positions: Mapping[int, int], value: Any) -> int | None:
    return positions.get(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _pairwise_state(chosen: int | None, rejected: int | None, tie: bool) -> tuple | None:
    if chosen is None or rejected is None:
        return None
    low, high = sorted((chosen, rejected))
    return (low, high, "tie" if tie else ("low" if chosen == low else "high"))


def gold_compare(
    *,
    gold_answer: Any,
    questions: Mapping[Any, Any],
    positions: Mapping[int, int],
    given: Mapping[int, dict],
) -> GoldCheck:
    """Compare the answers ``given`` (question id -> answer in response ids) with ``gold_answer``.

    ``questions`` maps ids and names to questions, ``positions`` maps a response's
    position to its id. ``given`` holds per question: ``pairwise`` (chosen, rejected,
    tie), ``ranking`` (groups of ids) or ``ratings`` ({(response id, aspect): value}).
    """
    scored = 0
    mismatched: list[str] = []
    answers = (gold_answer or {}).get("answers") if isinstance(gold_answer, dict) else None
    for expected in answers or []:
        if not isinstance(expected, dict):
            continue
        question = questions.get(expected.get("question"))
        if question is None or question.id not in given:
            continue
        answer = given[question.id]
        if question.kind == QuestionKind.PAIRWISE and "pairwise" in answer:
            want = _pairwise_state(
                _position_ids(positions, expected.get("chosen")),
                _position_ids(positions, expected.get("rejected")),
                bool(expected.get("tie")),
            )
            if want is None:
                continue
            ok = _pairwise_state(*answer["pairwise"]) == want
        elif question.kind == QuestionKind.RANKING and "ranking" in answer:
            ranking = expected.get("ranking")
            if not isinstance(ranking, list):
                continue
            want_groups = [
                frozenset(_position_ids(positions, r) for r in (g if isinstance(g, list) else [g]))
                for g in ranking
            ]
            ok = want_groups == [frozenset(group) for group in answer["ranking"]]
        elif question.kind == QuestionKind.RATING and "ratings" in answer:
            cells = {}
            for rating in expected.get("ratings") or []:
                if isinstance(rating, dict):
                    rid = _position_ids(positions, rating.get("response"))
                    cells[(rid, rating.get("aspect"))] = rating.get("value")
            if not cells:
                continue
            ok = all(answer["ratings"].get(cell) == value for cell, value in cells.items())
        else:
            continue
        scored += 1
        if not ok:
            mismatched.append(question.name)
    if not scored:
        return GoldCheck(None, ())
    return GoldCheck(not mismatched, tuple(mismatched))


def given_from_specs(specs: Sequence[Any]) -> dict[int, dict]:
    """The comparable part of validated submission specs (response keys are ids)."""
    given: dict[int, dict] = {}
    for spec in specs:
        if spec.kind == QuestionKind.PAIRWISE:
            row = spec.rows[0]
            given[spec.question.id] = {"pairwise": (row["chosen"], row["rejected"], row["tie"])}
        elif spec.kind == QuestionKind.RANKING:
            given[spec.question.id] = {"ranking": spec.rows[0]["ranking"]}
        elif spec.kind == QuestionKind.RATING:
            given[spec.question.id] = {
                "ratings": {(r["response"], r["aspect"]): r["value"] for r in spec.rows}
            }
    return given


def _given_from_annotation(annotation: Annotation) -> dict[int, dict]:
    given: dict[int, dict] = {}
    for row in annotation.pairwise_answers.all():
        given[row.question_id] = {"pairwise": (row.chosen_id, row.rejected_id, row.tie)}
    for row in annotation.ranking_answers.all():
        given[row.question_id] = {"ranking": row.ranking}
    for row in annotation.rating_answers.all():
        given.setdefault(row.question_id, {"ratings": {}})["ratings"][
            (row.response_id, row.aspect)
        ] = row.value
    return given


@dataclass(frozen=True)
class GoldResult:
    item_id: int
    title: str
    answered_at: datetime
    matched: bool


@dataclass(frozen=True)
class GoldSummary:
    """An annotator's record on a project's gold items: accuracy over scored answers, latest first."""

    scored: int
    correct: int
    recent: tuple[GoldResult, ...]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None


def gold_summary_for(
    *, user: AbstractBaseUser, projects: Sequence[Project], recent: int = RECENT_GOLD
) -> dict[int, GoldSummary]:
    """Per project: how ``user``'s answers to gold items compare with the expected answers.

    Four queries whatever the number of projects: the annotations on gold items with
    their answers, and the projects' questions and gold items' responses.
    """
    ids = [p.id for p in projects]
    annotations = list(
        Annotation.objects.filter(
            project_id__in=ids, annotator=user, source=Source.HUMAN, item__is_gold=True
        )
        .exclude(item__gold_answer=None)
        .select_related("item")
        .only("id", "project_id", "item_id", "created_at", "item__gold_answer", "item__title")
        .prefetch_related("pairwise_answers", "ranking_answers", "rating_answers")
        .order_by("-created_at", "-id")
    )
    questions: dict[int, dict[Any, Any]] = {pid: {} for pid in ids}
    for question in Question.objects.filter(project_id__in=ids):
        lookup = questions[question.project_id]
        lookup[question.id] = lookup[question.name] = question
    positions: dict[int, dict[int, int]] = {}
    for rid, item_id, position in Response.objects.filter(
        item_id__in={a.item_id for a in annotations}
    ).values_list("id", "item_id", "position"):
        positions.setdefault(item_id, {})[position] = rid
    results: dict[int, list[GoldResult]] = {pid: [] for pid in ids}
    for annotation in annotations:
        check = gold_compare(
            gold_answer=annotation.item.gold_answer,
            questions=questions[annotation.project_id],
            positions=positions.get(annotation.item_id, {}),
            given=_given_from_annotation(annotation),
        )
        if check.matched is None:
            continue
        results[annotation.project_id].append(
            GoldResult(
                item_id=annotation.item_id,
                title=annotation.item.title or f"Item {annotation.item_id}",
                answered_at=annotation.created_at,
                matched=check.matched,
            )
        )
    return {
        pid: GoldSummary(
            scored=len(rows),
            correct=sum(r.matched for r in rows),
            recent=tuple(rows[:recent]),
        )
        for pid, rows in results.items()
    }

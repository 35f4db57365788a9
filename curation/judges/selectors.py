"""Reads for judges, scoped to the caller's projects: the list, one judge, its track record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.errors import NotFound
from annotation.models import Item, PairwiseAnswer, Project, Question, QuestionKind, Source
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.models import Judge, JudgeVerdict, JudgeVersion


def judge_list_for(*, project: Project) -> QuerySet[Judge]:
    return Judge.objects.filter(project=project).order_by("id")


def judge_get_for(
    *,
    user: AbstractBaseUser,
    project_id: int,
    judge_id: int | str,
    roles: Iterable[str] = STAFF_ROLES,
) -> Judge:
    """A judge of a project the user has one of ``roles`` in; ``NotFound`` for any other id."""
    project, _ = project_get_for(user=user, project_id=project_id, roles=roles)
    try:
        pk = int(judge_id)
    except (TypeError, ValueError):
        raise NotFound("No such judge.")
    judge = Judge.objects.filter(pk=pk, project=project).select_related("project").first()
    if judge is None:
        raise NotFound("No such judge.")
    return judge


def judge_item_get(*, judge: Judge, item_id: Any) -> Item:
    """An item of the judge's project (the one a curator tests the judge on)."""
    try:
        pk = int(item_id)
    except (TypeError, ValueError):
        raise NotFound("No such item.")
    item = Item.objects.filter(pk=pk, project_id=judge.project_id).first()
    if item is None:
        raise NotFound("No such item in this project.")
    return item


def judge_items_pending(
    *, version: JudgeVersion, item_ids: list[int] | None, kinds: Iterable[str]
) -> tuple[list[Item], list[Question], set[tuple[int, int]]]:
    """Items with a judged question this version has no verdict on, the questions, what is done."""
    project_id = version.judge.project_id
    questions = list(
        Question.objects.filter(project_id=project_id, kind__in=list(kinds)).order_by(
            "position", "id"
        )
    )
    items_qs = Item.objects.filter(project_id=project_id).only("id", "conversation")
    if item_ids:
        items_qs = items_qs.filter(id__in=item_ids)
    done = set(
        JudgeVerdict.objects.filter(version=version, item__in=items_qs.values("id")).values_list(
            "item_id", "question_id"
        )
    )
    wanted = {q.id for q in questions}
    items = [
        item
        for item in items_qs.order_by("id")
        if any((item.id, question_id) not in done for question_id in wanted)
    ]
    return items, questions, done


def judge_versions(*, judge: Judge) -> list[JudgeVersion]:
    return list(JudgeVersion.objects.filter(judge=judge).order_by("number"))


def judge_stats(*, judge: Judge) -> dict[str, Any]:
    """Per version: how often it labelled, tied and abstained, how often both orders agreed
    (position consistency, pairwise questions) and how often its label matched the human
    majority of the item (agreement with humans; items without a human majority left out).
    """
    human: dict[tuple[int, int], Counter] = {}
    pair_of: dict[tuple[int, int], Counter] = {}
    for item_id, question_id, chosen_id, rejected_id in PairwiseAnswer.objects.filter(
        annotation__project_id=judge.project_id,
        annotation__source=Source.HUMAN,
        tie=False,
    ).values_list("annotation__item_id", "question_id", "chosen_id", "rejected_id"):
        human.setdefault((item_id, question_id), Counter())[chosen_id] += 1
        pair_of.setdefault((item_id, question_id), Counter())[
            frozenset((chosen_id, rejected_id))
        ] += 1
    majority: dict[tuple[int, int], int] = {}
    for key, votes in human.items():
        (top, count), *rest = votes.most_common(2) + [(None, 0)]
        if rest[0][1] < count:
            majority[key] = top
    # The pair the humans compared most (on more than two responses the judge's answer
    # names its best and worst, which need not be that pair).
    human_pair = {key: pairs.most_common(1)[0][0] for key, pairs in pair_of.items()}
    versions = []
    for version in judge_versions(judge=judge):
        outcomes: Counter = Counter()
        consistent = judged_orders = agree = compared = 0
        for (
            outcome,
            is_consistent,
            answer,
            item_id,
            question_id,
            kind,
            raw,
        ) in JudgeVerdict.objects.filter(version=version).values_list(
            "outcome", "consistent", "answer", "item_id", "question_id", "question__kind", "raw"
        ):
            outcomes[outcome] += 1
            if kind != QuestionKind.PAIRWISE:
                continue
            pairs = (raw or {}).get("pairs") if isinstance(raw, dict) else None
            if pairs:
                # Every pair of a verdict over more than two responses counts.
                for pair in pairs:
                    if pair.get("consistent") is not None:
                        judged_orders += 1
                        consistent += int(bool(pair["consistent"]))
            elif is_consistent is not None:
                judged_orders += 1
                consistent += int(is_consistent)
            target = majority.get((item_id, question_id))
            if target is None:
                continue
            chosen = _judge_choice(
                outcome, answer, pairs, human_pair.get((item_id, question_id), frozenset())
            )
            if chosen is not None:
                compared += 1
                agree += int(chosen == target)
        versions.append(
            {
                "version": version.label,
                "number": version.number,
                "created_at": version.created_at.isoformat(),
                "verdicts": sum(outcomes.values()),
                "labels": outcomes["label"],
                "ties": outcomes["tie"],
                "abstentions": outcomes["abstain"],
                "position_consistency": round(consistent / judged_orders, 4)
                if judged_orders
                else None,
                "pairs_in_both_orders": judged_orders,
                "human_agreement": round(agree / compared, 4) if compared else None,
                "compared_with_humans": compared,
            }
        )
    return {"judge": judge.id, "name": judge.name, "versions": versions}


def _judge_choice(outcome: str, answer: Any, pairs: Any, human_pair: frozenset) -> int | None:
    """The response the judge preferred within the pair the humans compared, if it said.

    A two-response verdict's label answers that pair. On more than two responses the
    judge's own verdict on that pair (from ``raw.pairs``) is read instead of its
    best-over-worst answer; a tie or an abstention there says nothing.
    """
    if not pairs:
        return answer.get("chosen") if outcome == "label" and answer else None
    for pair in pairs:
        responses = pair.get("responses") or []
        if frozenset(responses) == human_pair and pair.get("outcome") == "label":
            return responses[pair["winner"]]
    return None

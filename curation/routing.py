"""Hybrid routing on stored rows: the inputs a routing job reads, the decisions it writes, and
what the routing page and API show (the budget curve, per-item routes with reasons).

The maths is in :mod:`models_gpu.routing`; this module turns items and their pairwise
answers into the coded labels and judge signals it takes, and stores its answer.

An item is routed on its first two responses and the project's first pairwise
question (or the one named). Its human label is the majority direction of the human
answers (a split or a tie is no direction); the judge's label is the judge's answer
(a tie when its two presentation orders disagreed; on an item with more than two
responses, whose AI answer names the judge's best and worst, the wins of responses 0
and 1 over the judged pairs in the verdict's ``raw.scores``). Judge signals come from
``Item.metadata``: ``judge_orders[judge] = {"original": 1|2|None, "swapped": 1|2|None}``
(position inconsistency, abstention) and ``judge_confidence[judge]`` when a backend
gave one, as the dataset importers store them; for labels written by a ``label-ai`` job
they come from its ``JudgeVerdict`` rows (``consistent``, ``outcome``, ``confidence``).
Without either, an AI tie counts as position-inconsistent and the confidence is the
agreement of the orders (1 consistent, 0.5 not).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Case, Count, F, FloatField, Value, When

from annotation.errors import ValidationFailed
from annotation.models import Item, PairwiseAnswer, Project, Question, QuestionKind, Source
from curation.conversation import conversation_text
from curation.models import Job, JobKind, JobStatus, JudgeVerdict, Route, RoutingDecision

# Above the queue's default priority (0), so human-routed items come first; the
# decision's rank orders them among themselves.
HUMAN_PRIORITY_BASE = 1000.0


@dataclass
class RoutingInputs:
    """Aligned per-item inputs of a routing job (labels coded as in ``models_gpu.routing``)."""

    judge: str
    question: str
    item_ids: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    responses_a: list[str] = field(default_factory=list)
    responses_b: list[str] = field(default_factory=list)
    human: list[float] = field(default_factory=list)
    ai: list[float] = field(default_factory=list)
    position_inconsistent: list[bool] = field(default_factory=list)
    abstained: list[bool] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)


def routing_judges(*, project: Project) -> list[dict]:
    """The judges with AI labels in the project, most labels first."""
    rows = (
        PairwiseAnswer.objects.filter(annotation__project=project, annotation__source=Source.AI)
        .values(judge=F("annotation__judge_name"))
        .annotate(labels=Count("id"))
        .order_by("-labels", "judge")
    )
    return [{"judge": r["judge"], "labels": r["labels"]} for r in rows]


def _question(project: Project, name: str) -> Question:
    questions = Question.objects.filter(project=project, kind=QuestionKind.PAIRWISE)
    if name:
        question = questions.filter(name=name).first()
        if question is None:
            raise ValidationFailed(
                f"The project has no pairwise question named {name!r}.", field="params.question"
            )
        return question
    question = questions.order_by("position", "id").first()
    if question is None:
        raise ValidationFailed(
            "Routing needs a pairwise question in the project.", field="params.question"
        )
    return question


def _direction(chosen_position: int, tie: bool) -> float:
    if tie:
        return 0.0
    return 1.0 if chosen_position == 0 else -1.0


def _majority(votes: Sequence[float]) -> float:
    if not votes:
        return math.nan
    counts = Counter(votes)
    top = counts.most_common(2)
    if len(top) > 1 and top[0][1] == top[1][1]:
        return 0.0
    return float(top[0][0])


def routing_inputs(
    *, project: Project, judge: str = "", question: str = "", item_ids: Sequence[int] | None = None
) -> RoutingInputs:
    """Every routable item of the project (two responses or more, not excluded, not gold),
    with its texts, labels and the judge's signals. ``judge`` empty: the judge with most
    labels in the project (none: no AI labels, every judge signal says abstained)."""
    the_question = _question(project, question)
    if not judge:
        judges = routing_judges(project=project)
        judge = judges[0]["judge"] if judges else ""
    items = Item.objects.filter(project=project, excluded=False, is_gold=False)
    if item_ids is not None:
        items = items.filter(id__in=list(item_ids))
    items = items.prefetch_related("responses").order_by("id")
    human_votes: dict[int, list[float]] = defaultdict(list)
    ai_label: dict[int, float] = {}
    answers = PairwiseAnswer.objects.filter(
        question=the_question, annotation__project=project
    ).values(
        "annotation__item_id",
        "annotation__source",
        "annotation__judge_name",
        "chosen__position",
        "rejected__position",
        "tie",
    )
    for row in answers.iterator(chunk_size=2000):
        positions = {row["chosen__position"], row["rejected__position"]}
        if positions != {0, 1}:
            continue
        direction = _direction(row["chosen__position"], row["tie"])
        item_id = row["annotation__item_id"]
        if row["annotation__source"] == Source.HUMAN:
            human_votes[item_id].append(direction)
        elif row["annotation__judge_name"] == judge:
            ai_label[item_id] = direction
    judge_verdicts = {
        row["item_id"]: row
        for row in JudgeVerdict.objects.filter(
            version__label=judge, version__judge__project=project, question=the_question
        ).values("item_id", "outcome", "consistent", "confidence", "raw")
    }
    out = RoutingInputs(judge=judge, question=the_question.name)
    for item in items.iterator(chunk_size=1000):
        responses = sorted(item.responses.all(), key=lambda r: r.position)
        if len(responses) < 2:
            continue
        orders = ((item.metadata or {}).get("judge_orders") or {}).get(judge)
        given_confidence = ((item.metadata or {}).get("judge_confidence") or {}).get(judge)
        label = ai_label.get(item.id, math.nan)
        verdict = judge_verdicts.get(item.id)
        if verdict is not None and math.isnan(label):
            label = _first_two_direction(verdict)
        if verdict is not None:
            inconsistent = verdict["consistent"] is False
            abstained = verdict["outcome"] == "abstain"
            given_confidence = verdict["confidence"]
        elif orders:
            verdicts = [orders.get("original"), orders.get("swapped")]
            inconsistent = None not in verdicts and verdicts[0] != verdicts[1]
            abstained = all(v is None for v in verdicts)
        else:
            inconsistent = label == 0.0
            abstained = math.isnan(label)
        if isinstance(given_confidence, (int, float)):
            confidence = float(given_confidence)
        elif abstained:
            confidence = math.nan
        else:
            confidence = 0.5 if inconsistent else 1.0
        out.item_ids.append(item.id)
        out.prompts.append(conversation_text(item.conversation))
        out.responses_a.append(responses[0].text)
        out.responses_b.append(responses[1].text)
        out.human.append(_majority(human_votes.get(item.id, [])))
        out.ai.append(label)
        out.position_inconsistent.append(bool(inconsistent))
        out.abstained.append(bool(abstained))
        out.confidence.append(confidence)
    return out


def _first_two_direction(verdict: dict) -> float:
    """The judge's direction between responses 0 and 1 from a verdict over more than two
    responses (whose answer names its best and worst, not necessarily those two): their
    wins over the judged pairs. NaN when the verdict has no scores (an abstention)."""
    scores = (verdict.get("raw") or {}).get("scores")
    if verdict["outcome"] == "abstain" or not isinstance(scores, list) or len(scores) < 2:
        return math.nan
    if scores[0] == scores[1]:
        return 0.0
    return 1.0 if scores[0] > scores[1] else -1.0


def _reason(route: str, score_kind: str, score: float, features: dict) -> str:
    """A short, human-readable reason for one decision."""
    signals = []
    if features.get("position_inconsistent"):
        signals.append("the judge's two orders disagree")
    if features.get("abstained"):
        signals.append("the judge gave no label")
    if features.get("safety_concern") == "moderate":
        signals.append("moderate safety concern")
    if features.get("complexity") == "complex":
        signals.append("complex intent")
    what = {
        "error": f"predicted judge error {score:.2f}",
        "gain": f"predicted gain {score:+.4f}",
        "prior": f"prior score {score:.1f}",
        "random": "random draw",
    }.get(score_kind, f"score {score:.3f}")
    who = "human" if route == Route.HUMAN else "judge"
    return f"To the {who}: {what}" + (f"; {', '.join(signals)}." if signals else ".")


@transaction.atomic
def routing_decisions_store(
    *,
    job: Job,
    item_ids: Sequence[int],
    to_human: Sequence[bool],
    scores: Sequence[float],
    score_kind: str,
    features: Sequence[dict],
) -> int:
    """Replace the job's decisions and give human-routed items queue priority, in one
    transaction (a retried job rewrites the same rows).

    Human-routed items get ``HUMAN_PRIORITY_BASE + (rows − rank)``, so they are served
    first and in rank order; AI-routed items of this project that an earlier routing
    raised go back to priority 0.
    """
    RoutingDecision.objects.filter(job=job).delete()
    order = sorted(range(len(item_ids)), key=lambda i: (not to_human[i], -scores[i], i))
    rows = []
    for rank, i in enumerate(order, start=1):
        route = Route.HUMAN if to_human[i] else Route.AI
        reason = _reason(route, score_kind, float(scores[i]), features[i])
        rows.append(
            RoutingDecision(
                job=job,
                item_id=item_ids[i],
                route=route,
                score=float(scores[i]),
                score_kind=score_kind,
                rank=rank,
                features={**features[i], "reason": reason},
            )
        )
    RoutingDecision.objects.bulk_create(rows, batch_size=2000)
    total = len(rows)
    human_ids = [r.item_id for r in rows if r.route == Route.HUMAN]
    ai_ids = [r.item_id for r in rows if r.route == Route.AI]
    for start in range(0, len(ai_ids), 5000):
        Item.objects.filter(
            id__in=ai_ids[start : start + 5000], priority__gte=HUMAN_PRIORITY_BASE
        ).update(priority=0.0)
    # Each item has its own priority: one UPDATE per chunk with a CASE, not one per item.
    if human_ids:
        for start in range(0, len(human_ids), 2000):
            chunk = human_ids[start : start + 2000]
            cases = [
                When(id=item_id, then=Value(HUMAN_PRIORITY_BASE + (total - (start + offset + 1))))
                for offset, item_id in enumerate(chunk)
            ]
            Item.objects.filter(id__in=chunk).update(
                priority=Case(*cases, default=F("priority"), output_field=FloatField())
            )
    return total


def latest_routing_job(*, project: Project) -> Job | None:
    """The project's last succeeded routing job."""
    return (
        Job.objects.filter(project=project, kind=JobKind.ROUTE, status=JobStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )


def routing_summary(*, project: Project, job: Job | None = None) -> dict:
    """The routing page's data: the job, its budget curve and route counts."""
    job = job or latest_routing_job(project=project)
    if job is None:
        return {"job": None, "curve": [], "counts": {}, "judges": routing_judges(project=project)}
    counts = dict(
        RoutingDecision.objects.filter(job=job)
        .values_list("route")
        .annotate(n=Count("id"))
        .values_list("route", "n")
    )
    result = job.result or {}
    return {
        "job": {
            "id": job.id,
            "strategy": result.get("strategy"),
            "used": result.get("used"),
            "fallback": result.get("fallback"),
            "budget": result.get("budget"),
            "judge": result.get("judge"),
            "labelled": result.get("labelled"),
            "finished_at": job.finished_at,
        },
        "curve": result.get("curve", []),
        "counts": {"human": counts.get(Route.HUMAN, 0), "ai": counts.get(Route.AI, 0)},
        "judges": routing_judges(project=project),
    }


def routing_decision_list(*, job: Job, route: str | None = None):
    """The job's decisions in rank order, with the item's title (for the per-item table)."""
    decisions = RoutingDecision.objects.filter(job=job).select_related("item")
    if route:
        decisions = decisions.filter(route=route)
    return decisions.order_by("rank")


def routing_ai_item_ids(*, job: Job) -> list[int]:
    """The items the job routed to the judge."""
    return list(
        RoutingDecision.objects.filter(job=job, route=Route.AI)
        .order_by("rank")
        .values_list("item_id", flat=True)
    )

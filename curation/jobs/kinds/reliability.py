"""Annotator reliability: a Dawid–Skene fit per question over a project's human labels.

Every pairwise question and every aspect of every rating question is one fit
(:func:`models_gpu.fit_dawid_skene`). A pairwise unit is a response pair of an item,
its classes oriented by response id (0: the lower id is better, 1: the higher, 2: tie),
so votes given in either order count alike. A rating unit is a response and aspect; its
values are classes of the scale (its steps, or ``rating_bins`` equal bins when the scale
has more steps than that), ordered, so the ordinal prior applies. Gold items' expected
answers anchor the fit.

Writes: one ``AnnotatorReliability`` per annotator and fit (with the share of their votes
that match the majority of the other votes on the same unit, the usual yardstick) and
one ``ItemPosterior`` per unit. A re-run replaces the job's rows in one transaction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction

import models_gpu
from annotation.errors import ValidationFailed
from annotation.models import (
    Item,
    PairwiseAnswer,
    Project,
    Question,
    QuestionKind,
    RatingAnswer,
    Source,
)
from annotation.services.overlap import items_low_confidence_reopen
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import finite
from curation.jobs.params import (
    JobParams,
    boolean,
    choice,
    default_of,
    integer,
    number,
    string_list,
)
from curation.models import AnnotatorReliability, ItemPosterior, Job, JobKind
from curation.params import SEED_MAX

A_BETTER, B_BETTER, TIE = 0, 1, 2
PAIRWISE_CLASSES = 3
FITTED_KINDS = (QuestionKind.PAIRWISE, QuestionKind.RATING)


@dataclass(frozen=True)
class ReliabilityParams(JobParams):
    """Parameters of a reliability job (human labels only)."""

    questions: list[str] = string_list(
        [], help="Only these pairwise or rating questions, by name (empty: every one)."
    )
    model: str = choice(
        default_of(models_gpu.DawidSkeneConfig, "model"),
        ("dawid-skene", "mace"),
        help="dawid-skene: a confusion matrix per annotator; mace: a competence and a spam "
        "distribution per annotator (reliability = competence).",
    )
    ordinal: bool = boolean(
        True, help="Treat ratings as ordered: confusions lean toward nearby ratings."
    )
    rating_bins: int = integer(
        5,
        low=2,
        high=101,
        help="Classes a rating scale is cut into when it has more steps than this.",
    )
    use_gold: bool = boolean(True, help="Anchor the fit on gold items' expected answers.")
    smoothing: float = number(
        default_of(models_gpu.DawidSkeneConfig, "smoothing"),
        low=0.001,
        high=100.0,
        help="Dirichlet pseudo-counts per confusion cell.",
    )
    max_iter: int = integer(
        default_of(models_gpu.DawidSkeneConfig, "max_iter"),
        low=1,
        high=10000,
        help="Most EM iterations per fit.",
    )
    tol: float = number(
        default_of(models_gpu.DawidSkeneConfig, "tol"),
        low=0.0,
        high=0.1,
        help="Relative change of the log-likelihood under which EM stops.",
    )
    seed: int = integer(
        default_of(models_gpu.DawidSkeneConfig, "seed"), low=0, high=SEED_MAX, help="Seed."
    )

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        wanted = [name.strip() for name in values["questions"] if name.strip()]
        values["questions"] = wanted
        fitted = set(
            Question.objects.filter(project=project, kind__in=FITTED_KINDS).values_list(
                "name", flat=True
            )
        )
        unknown = [name for name in wanted if name not in fitted]
        if unknown:
            raise ValidationFailed(
                f"questions must name pairwise or rating questions of this project; "
                f"not one: {', '.join(unknown)}.",
                field="params.questions",
            )

    def fit_config(self, *, ordinal: bool) -> models_gpu.DawidSkeneConfig:
        return models_gpu.DawidSkeneConfig(
            max_iter=self.max_iter,
            tol=self.tol,
            smoothing=self.smoothing,
            ordinal=ordinal,
            model=self.model,  # type: ignore[arg-type]
            seed=self.seed,
        )


@dataclass
class Scale:
    """How a rating aspect's values become classes and back."""

    low: float
    high: float
    step: float | None
    bins: int

    @property
    def stepped(self) -> bool:
        return self.step is not None and round((self.high - self.low) / self.step) + 1 <= self.bins

    @property
    def classes(self) -> int:
        if self.stepped:
            return int(round((self.high - self.low) / self.step)) + 1  # type: ignore[operator]
        return self.bins

    def class_of(self, value: float) -> int:
        span = self.high - self.low
        if self.stepped:
            position = round((value - self.low) / self.step)  # type: ignore[operator]
        else:
            position = math.floor((value - self.low) / span * self.bins)
        return min(max(int(position), 0), self.classes - 1)

    def value_of(self, label: int) -> float:
        if self.stepped:
            return self.low + label * self.step  # type: ignore[operator]
        return self.low + (label + 0.5) * (self.high - self.low) / self.bins


@dataclass
class Group:
    """The votes of one fit: one pairwise question, or one aspect of a rating question."""

    question: str
    aspect: str
    kind: str
    classes: int
    scale: Scale | None = None
    units: dict[tuple[int, str], int] = field(default_factory=dict)  # (item, unit) -> index
    votes: list[tuple[int, int, int]] = field(default_factory=list)  # unit, annotator id, class
    gold: dict[int, int] = field(default_factory=dict)

    def unit_index(self, item_id: int, unit: str) -> int:
        return self.units.setdefault((item_id, unit), len(self.units))


def _pairwise_class(chosen: int, rejected: int, tie: bool) -> tuple[str, int]:
    low, high = sorted((chosen, rejected))
    label = TIE if tie else (A_BETTER if chosen == low else B_BETTER)
    return f"{low}-{high}", label


def _scale_of(question: Question, aspect: str, bins: int) -> Scale:
    own = next(
        (a.get("scale") for a in question.config.get("aspects", []) if a.get("name") == aspect),
        None,
    )
    scale = own or question.config.get("scale") or {"min": 1, "max": 5}
    step = scale.get("step", 1)
    return Scale(
        float(scale["min"]), float(scale["max"]), None if step is None else float(step), bins
    )


def _load_groups(project: Project, params: ReliabilityParams) -> list[Group]:
    questions = Question.objects.filter(project=project, kind__in=FITTED_KINDS)
    if params.questions:
        questions = questions.filter(name__in=params.questions)
    by_id = {q.id: q for q in questions.order_by("position", "id")}
    groups: dict[tuple[int, str], Group] = {}
    for question in by_id.values():
        if question.kind == QuestionKind.PAIRWISE:
            groups[(question.id, "")] = Group(question.name, "", question.kind, PAIRWISE_CLASSES)
        else:
            for aspect in question.config.get("aspects", []):
                scale = _scale_of(question, aspect["name"], params.rating_bins)
                groups[(question.id, aspect["name"])] = Group(
                    question.name, aspect["name"], question.kind, scale.classes, scale
                )
    human = {
        "annotation__project": project,
        "annotation__source": Source.HUMAN,
        "annotation__annotator__isnull": False,
        "question_id__in": list(by_id),
    }
    pairwise = PairwiseAnswer.objects.filter(**human).values_list(
        "question_id",
        "annotation__item_id",
        "annotation__annotator_id",
        "chosen_id",
        "rejected_id",
        "tie",
    )
    for question_id, item_id, annotator_id, chosen, rejected, tie in pairwise.order_by(
        "id"
    ).iterator(chunk_size=5000):
        group = groups[(question_id, "")]
        unit, label = _pairwise_class(chosen, rejected, tie)
        group.votes.append((group.unit_index(item_id, unit), annotator_id, label))
    ratings = RatingAnswer.objects.filter(**human).values_list(
        "question_id",
        "annotation__item_id",
        "annotation__annotator_id",
        "response_id",
        "aspect",
        "value",
    )
    for question_id, item_id, annotator_id, response_id, aspect, value in ratings.order_by(
        "id"
    ).iterator(chunk_size=5000):
        group = groups.get((question_id, aspect))
        if group is None or group.scale is None:
            continue
        index = group.unit_index(item_id, str(response_id))
        group.votes.append((index, annotator_id, group.scale.class_of(value)))
    if params.use_gold:
        _add_gold(project, by_id, groups)
    return [group for group in groups.values() if group.votes]


def _add_gold(
    project: Project, questions: dict[int, Question], groups: dict[tuple[int, str], Group]
) -> None:
    """Gold items' expected answers (responses by position), in the units of the votes."""
    by_name = {q.name: q for q in questions.values()}
    gold_items = (
        Item.objects.filter(project=project, is_gold=True)
        .exclude(gold_answer=None)
        .prefetch_related("responses")
    )
    for item in gold_items:
        by_position = {r.position: r.id for r in item.responses.all()}
        answers = (item.gold_answer or {}).get("answers") or []
        for answer in answers if isinstance(answers, list) else []:
            if not isinstance(answer, dict):
                continue
            key = answer.get("question")
            question = questions.get(key) if isinstance(key, int) else by_name.get(key)
            if question is None:
                continue
            if question.kind == QuestionKind.PAIRWISE:
                chosen = by_position.get(answer.get("chosen"))
                rejected = by_position.get(answer.get("rejected"))
                group = groups.get((question.id, ""))
                if chosen is None or rejected is None or group is None:
                    continue
                unit, label = _pairwise_class(chosen, rejected, bool(answer.get("tie")))
                group.gold[group.unit_index(item.id, unit)] = label
                continue
            for rating in answer.get("ratings") or []:
                if not isinstance(rating, dict):
                    continue
                group = groups.get((question.id, str(rating.get("aspect"))))
                response_id = by_position.get(rating.get("response"))
                value = rating.get("value")
                if group is None or group.scale is None or response_id is None:
                    continue
                if not isinstance(value, (int, float)):
                    continue
                index = group.unit_index(item.id, str(response_id))
                group.gold[index] = group.scale.class_of(float(value))


def leave_one_out_agreement(
    units: np.ndarray, labels: np.ndarray, n_units: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether it matches the majority of the *other* votes on its unit.

    Returns ``(scored, agrees)``: ``scored`` is False where the others cast no vote or
    split evenly between their top classes (no majority to agree with).
    """
    counts = np.zeros((n_units, n_classes))
    np.add.at(counts, (units, labels), 1.0)
    others = counts[units].copy()
    others[np.arange(labels.size), labels] -= 1.0
    top = others.max(axis=1)
    scored = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
    agrees = others.argmax(axis=1) == labels
    return scored, agrees & scored


def _correlation(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _fit_group(
    job: Job, group: Group, params: ReliabilityParams
) -> tuple[list[AnnotatorReliability], list[ItemPosterior], dict[str, Any]]:
    votes = np.array(group.votes, dtype=np.int64)
    units, annotator_ids, labels = votes[:, 0], votes[:, 1], votes[:, 2]
    people, annotators = np.unique(annotator_ids, return_inverse=True)
    n_units = len(group.units)
    fit = models_gpu.fit_dawid_skene(
        units,
        annotators,
        labels,
        group.classes,
        gold=group.gold or None,
        config=params.fit_config(ordinal=params.ordinal and group.kind == QuestionKind.RATING),
        n_items=n_units,
        n_annotators=len(people),
    )
    scored, agrees = leave_one_out_agreement(units, labels, n_units, group.classes)
    scored_per = np.bincount(annotators, weights=scored, minlength=len(people))
    agree_per = np.bincount(annotators, weights=agrees, minlength=len(people))
    reliabilities = []
    for index, person in enumerate(people):
        agreement = agree_per[index] / scored_per[index] if scored_per[index] else None
        reliabilities.append(
            AnnotatorReliability(
                job=job,
                question=group.question,
                aspect=group.aspect,
                annotator_id=int(person),
                reliability=float(fit.reliability[index]),
                votes=int(fit.annotator_votes[index]),
                agreement=None if agreement is None else float(agreement),
                confusion=np.round(fit.confusion[index], 6).tolist(),
            )
        )
    votes_per_unit = np.bincount(units, minlength=n_units)
    posteriors = [
        ItemPosterior(
            job=job,
            item_id=item_id,
            question=group.question,
            aspect=group.aspect,
            unit=unit,
            label=int(fit.labels[index]),
            value=None if group.scale is None else group.scale.value_of(int(fit.labels[index])),
            confidence=float(fit.confidence[index]),
            posterior=np.round(fit.posterior[index], 6).tolist(),
            votes=int(votes_per_unit[index]),
        )
        for (item_id, unit), index in group.units.items()
    ]
    scored_rows = [r for r in reliabilities if r.agreement is not None]
    summary = {
        "question": group.question,
        "aspect": group.aspect or None,
        "kind": group.kind,
        "classes": group.classes,
        "units": n_units,
        "votes": int(labels.size),
        "annotators": len(people),
        "gold_units": len(group.gold),
        "iterations": fit.iterations,
        "converged": fit.converged,
        "log_likelihood": finite(fit.log_likelihood),
        "mean_confidence": finite(float(fit.confidence.mean())),
        "reliability_agreement_correlation": finite(
            _correlation(
                [r.reliability for r in scored_rows], [float(r.agreement) for r in scored_rows]
            )
        ),
    }
    return reliabilities, posteriors, summary


def run(job: Job, report: Report) -> dict[str, Any]:
    """Read the human labels, fit each question (and rating aspect), store the rows."""
    params = ReliabilityParams.from_job(job)
    report(0.0, "reading human labels")
    groups = _load_groups(job.project, params)
    if not groups:
        raise ValidationFailed(
            "No human pairwise or rating labels to fit in this project.", field="params"
        )
    reliabilities: list[AnnotatorReliability] = []
    posteriors: list[ItemPosterior] = []
    summaries = []
    for done, group in enumerate(groups):
        name = f"{group.question}/{group.aspect}" if group.aspect else group.question
        report(0.1 + 0.8 * done / len(groups), f"fitting {name} ({len(group.votes)} votes)")
        rows, units, summary = _fit_group(job, group, params)
        reliabilities += rows
        posteriors += units
        summaries.append(summary)
    report(0.92, "storing reliabilities and posteriors")
    with transaction.atomic():
        AnnotatorReliability.objects.filter(job=job).delete()
        ItemPosterior.objects.filter(job=job).delete()
        AnnotatorReliability.objects.bulk_create(reliabilities, batch_size=2000)
        ItemPosterior.objects.bulk_create(posteriors, batch_size=2000)
    # Adaptive overlap with a confidence threshold: low-confidence items ask for a vote.
    reopened = items_low_confidence_reopen(
        project=job.project, confidences=[(p.item_id, p.confidence) for p in posteriors]
    )
    by_person: dict[int, list[float]] = defaultdict(list)
    for row in reliabilities:
        by_person[row.annotator_id].append(row.reliability)
    return {
        "model": params.model,
        "fits": summaries,
        "annotators": len(by_person),
        "units": len(posteriors),
        "votes": sum(s["votes"] for s in summaries),
        "converged": all(s["converged"] for s in summaries),
        "items_asking_another_vote": reopened,
    }


SPEC = JobKindSpec(
    kind=JobKind.RELIABILITY.value,
    summary="Fit annotator reliabilities and per-item label posteriors (Dawid–Skene or MACE) "
    "over the human pairwise and rating labels; the reliability aggregation policy uses them.",
    params=ReliabilityParams,
    queue="default",
    writes=("AnnotatorReliability per annotator and question", "ItemPosterior per unit"),
    run=run,
)

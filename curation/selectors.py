"""Reads for curation, scoped to the caller's projects: jobs, scores, dataset versions, quality."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from statistics import median

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.errors import NotFound
from annotation.models import Annotation, Item, Project, Question, QuestionKind, Source
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import agreement
from curation.models import DatasetVersion, Job, PairScore
from curation.pairs import pseudonymous_annotator


def job_list_for(*, project: Project, kind: str | None = None) -> QuerySet[Job]:
    """A project's jobs, newest first, with their artifacts; only ``kind`` when given."""
    jobs = Job.objects.filter(project=project).prefetch_related("artifacts")
    return jobs.filter(kind=kind) if kind else jobs


def pair_score_list_for(
    *, job: Job, kept: bool | None = None, suspect: bool | None = None
) -> QuerySet[PairScore]:
    """A job's per-pair scores, optionally only the kept or the suspect ones."""
    scores = PairScore.objects.filter(job=job)
    if kept is not None:
        scores = scores.filter(kept=kept)
    if suspect is not None:
        scores = scores.filter(suspect=suspect)
    return scores


def dataset_version_list_for(*, project: Project) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(project=project)


def job_get_for(*, user: AbstractBaseUser, project_id: int, job_id: int) -> Job:
    project, _ = project_get_for(user=user, project_id=project_id, roles=STAFF_ROLES)
    job = Job.objects.filter(project=project, pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def dataset_version_get_for(
    *, user: AbstractBaseUser, project_id: int, version_id: int
) -> DatasetVersion:
    project, _ = project_get_for(user=user, project_id=project_id, roles=STAFF_ROLES)
    version = DatasetVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise NotFound("No such dataset version.")
    return version


def _clean(value: float) -> float | None:
    return (
        None
        if value is None or (isinstance(value, float) and math.isnan(value))
        else round(float(value), 4)
    )


def project_quality(*, project: Project, show_usernames: bool = False) -> dict:
    """Agreement per question and quality per annotator, from human annotations.

    Per question: Krippendorff's alpha (nominal for pairwise choices, interval for
    ratings, nominal on pairwise projections for rankings), mean pairwise Cohen's
    kappa over annotator pairs sharing at least 5 units, and Fleiss' kappa over
    the units that have the most common number of ratings. Per annotator:
    agreement with the majority of the others, gold accuracy, median seconds per
    item; flagged below the project's quality threshold.
    """
    questions = {q.id: q for q in Question.objects.filter(project=project)}
    annotations = (
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .select_related("annotator", "item")
        .prefetch_related("pairwise_answers", "ranking_answers", "rating_answers")
    )
    salt = str(project.id)
    data: dict[int, dict] = defaultdict(
        lambda: defaultdict(dict)
    )  # question -> unit -> coder -> value
    gold_data: dict[int, dict] = defaultdict(lambda: defaultdict(dict))
    gold_truth: dict[int, dict] = defaultdict(dict)
    times: dict[str, list[float]] = defaultdict(list)
    names: dict[str, str] = {}
    counts: dict[str, int] = defaultdict(int)  # annotations per annotator, counted in the one pass
    positions: dict[int, dict[int, int]] = {}
    gold_items = {
        i.id: i
        for i in Item.objects.filter(project=project, is_gold=True).prefetch_related("responses")
    }
    for annotation in annotations.iterator(chunk_size=2000):
        who = pseudonymous_annotator(annotation, salt)
        names[who] = annotation.annotator.username if annotation.annotator_id else who
        counts[who] += 1
        if annotation.time_spent_ms is not None:
            times[who].append(annotation.time_spent_ms / 1000)
        is_gold = annotation.item_id in gold_items
        target = gold_data if is_gold else data
        for answer in annotation.pairwise_answers.all():
            lo, hi = sorted((answer.chosen_id, answer.rejected_id))
            target[answer.question_id][(annotation.item_id, lo, hi)][who] = (
                "tie" if answer.tie else ("lo" if answer.chosen_id == lo else "hi")
            )
        for answer in annotation.ranking_answers.all():
            rank = {rid: r for r, group in enumerate(answer.ranking) for rid in group}
            for a, b in combinations(sorted(rank), 2):
                target[answer.question_id][(annotation.item_id, a, b)][who] = (
                    rank[a] > rank[b]
                ) - (rank[a] < rank[b])
        for answer in annotation.rating_answers.all():
            target[answer.question_id][(annotation.item_id, answer.response_id, answer.aspect)][
                who
            ] = answer.value
    # Gold truth, in the same unit shapes, from each gold item's expected answer (responses by position).
    for item in gold_items.values():
        by_position = {r.position: r.id for r in item.responses.all()}
        positions[item.id] = by_position
        for answer in (item.gold_answer or {}).get("answers", []):
            question = next(
                (q for q in questions.values() if answer.get("question") in (q.id, q.name)), None
            )
            if question is None or question.kind != QuestionKind.PAIRWISE:
                continue
            chosen, rejected = (
                by_position.get(answer.get("chosen")),
                by_position.get(answer.get("rejected")),
            )
            if chosen is None or rejected is None:
                continue
            lo, hi = sorted((chosen, rejected))
            gold_truth[question.id][(item.id, lo, hi)] = (
                "tie" if answer.get("tie") else ("lo" if chosen == lo else "hi")
            )

    per_question = []
    pooled_agreement: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for question in sorted(questions.values(), key=lambda q: q.position):
        units = data.get(question.id, {})
        level = "interval" if question.kind == QuestionKind.RATING else "nominal"
        entry = {
            "question": question.name,
            "kind": question.kind,
            "units": len(units),
            "level": level,
        }
        if question.kind == QuestionKind.CORRECTION:
            entry["note"] = "agreement is not computed for free-form corrections"
            per_question.append(entry)
            continue
        plain = {unit: dict(coders) for unit, coders in units.items()}
        entry["krippendorff_alpha"] = (
            _clean(agreement.krippendorff_alpha(plain, level=level)) if plain else None
        )
        entry["cohen_kappa_mean"], entry["cohen_pairs"] = _cohen(plain, level)
        entry["fleiss_kappa"] = _fleiss(plain, level)
        per_question.append(entry)
        if level == "nominal":
            for who, score in agreement.annotator_majority_agreement(plain).items():
                if score.n_units:
                    pooled_agreement[who].append((score.value, score.n_units))
    gold_scores: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for question_id, truth in gold_truth.items():
        for who, score in agreement.gold_accuracy_by_annotator(
            {u: dict(c) for u, c in gold_data.get(question_id, {}).items()}, truth
        ).items():
            if score.n_units:
                gold_scores[who].append((score.value, score.n_units))
    threshold = project.quality_threshold
    annotators = []
    for who in sorted(set(names)):
        agree = _pool(pooled_agreement.get(who, []))
        gold = _pool(gold_scores.get(who, []))
        reasons = []
        if agree[1] >= 5 and agree[0] < threshold:
            reasons.append(f"agreement {agree[0]:.2f} below {threshold}")
        if gold[1] >= 3 and gold[0] < threshold:
            reasons.append(f"gold accuracy {gold[0]:.2f} below {threshold}")
        row = {
            "annotator": who,
            "annotations": 0,
            "agreement_with_majority": _clean(agree[0]),
            "agreement_units": agree[1],
            "gold_accuracy": _clean(gold[0]),
            "gold_items": gold[1],
            "median_seconds_per_item": _clean(median(times[who])) if times.get(who) else None,
            "flagged": bool(reasons),
            "reasons": reasons,
        }
        if show_usernames:
            row["username"] = names[who]
        annotators.append(row)
    for row in annotators:
        row["annotations"] = counts[row["annotator"]]
    return {
        "project": project.id,
        "quality_threshold": threshold,
        "questions": per_question,
        "annotators": annotators,
        "flagged": [row["annotator"] for row in annotators if row["flagged"]],
    }


def _pool(scores: list[tuple[float, int]]) -> tuple[float, int]:
    total = sum(n for _, n in scores)
    if not total:
        return (math.nan, 0)
    return (sum(v * n for v, n in scores) / total, total)


def _cohen(units: dict, level: str) -> tuple[float | None, list[dict]]:
    by_pair: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for coders in units.values():
        for a, b in combinations(sorted(coders), 2):
            by_pair[(a, b)].append((coders[a], coders[b]))
    results = []
    for (a, b), values in by_pair.items():
        if len(values) < 5:
            continue
        left, right = zip(*values, strict=True)
        if level == "interval":
            left = [round(v) for v in left]
            right = [round(v) for v in right]
        kappa = agreement.cohen_kappa(list(map(str, left)), list(map(str, right)))
        if not math.isnan(kappa):
            results.append({"annotators": [a, b], "units": len(values), "kappa": round(kappa, 4)})
    if not results:
        return None, []
    results.sort(key=lambda r: -r["units"])
    mean = sum(r["kappa"] for r in results) / len(results)
    return round(mean, 4), results[:20]


def _fleiss(units: dict, level: str) -> dict | None:
    sizes = defaultdict(int)
    for coders in units.values():
        if len(coders) >= 2:
            sizes[len(coders)] += 1
    if not sizes:
        return None
    n = max(sizes, key=lambda size: (sizes[size], size))
    ratings = {
        unit: [str(round(v) if level == "interval" else v) for v in coders.values()]
        for unit, coders in units.items()
        if len(coders) == n
    }
    if len(ratings) < 2:
        return None
    counts, _ = agreement.fleiss_counts(ratings)
    return {
        "kappa": _clean(agreement.fleiss_kappa(counts)),
        "raters_per_unit": n,
        "units": len(ratings),
    }

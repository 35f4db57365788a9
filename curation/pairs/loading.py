"""Reading the rows pairs are built from: the only ORM code of :mod:`curation.pairs`.

Items are read in id order, a chunk at a time, and each chunk's responses,
selected annotations and answers are read by item id range into plain rows
(:mod:`curation.pairs.rows`), one query per table and chunk. Memory stays bounded
by the chunk, and the time grows linearly with the project (see
``bench/bench_export.py`` and the 200,000-annotation export test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from django.db import connection
from django.db.models import Q, QuerySet

from annotation.errors import ValidationFailed
from annotation.models import (
    Annotation,
    CorrectionAnswer,
    Item,
    PairwiseAnswer,
    Project,
    Question,
    RankingAnswer,
    RatingAnswer,
    Response,
    Source,
)
from curation.models import Adjudication, Decision, ItemPosterior, Job, JobKind, JobStatus
from curation.pairs.rows import (
    AnnotationRow,
    CorrectionRow,
    ItemRow,
    PairwiseRow,
    RankingRow,
    RatingRow,
    ResponseRow,
)
from curation.pairs.selection import Selection

# The annotator name of an adjudicated label in records (never a person's pseudonym).
ADJUDICATOR = "adjudicated"

CHUNK = 1000

# Answer table -> (model, row type); the row type's fields are the columns read.
_ANSWER_TABLES = {
    "pairwise_answers": (PairwiseAnswer, PairwiseRow),
    "ranking_answers": (RankingAnswer, RankingRow),
    "rating_answers": (RatingAnswer, RatingRow),
    "correction_answers": (CorrectionAnswer, CorrectionRow),
}


def questions_by_id(*, project: Project, kind: str | None = None) -> dict[int, Question]:
    """The project's questions (of one kind when given), by id."""
    questions = Question.objects.filter(project=project)
    if kind is not None:
        questions = questions.filter(kind=kind)
    return {q.id: q for q in questions}


def _annotations_queryset(selection: Selection) -> QuerySet[Annotation]:
    # No project filter: callers restrict by item id range and keep only this
    # project's items. An equality on project_id would lead SQLite's planner to scan
    # every annotation of the project for each chunk (quadratic on large exports).
    qs = Annotation.objects.all()
    if selection.source == "human":
        qs = qs.filter(source=Source.HUMAN)
    elif selection.source == "ai":
        qs = qs.filter(source=Source.AI)
    if selection.created_after:
        qs = qs.filter(created_at__gte=selection.created_after)
    if selection.created_before:
        qs = qs.filter(created_at__lt=selection.created_before)
    for key, value in selection.annotator_filter.items():
        lookup = f"annotator__profile__{key}"
        if isinstance(value, list):
            qs = qs.filter(**{f"{lookup}__in": value})
        else:
            qs = qs.filter(**{lookup: value})
    return qs


def reliability_job_latest(*, project: Project) -> Job | None:
    """The project's latest succeeded reliability job (its posteriors label pairs under
    the ``reliability`` aggregation), or None."""
    return (
        Job.objects.filter(project=project, kind=JobKind.RELIABILITY, status=JobStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )


def selection_with_reliability_job(*, project: Project, selection: Selection) -> Selection:
    """``selection`` with its reliability job set: the project's latest succeeded one when the
    aggregation is ``reliability`` and none is named (a 400 when there is none)."""
    if selection.aggregation != "reliability" or selection.reliability_job is not None:
        return selection
    job = reliability_job_latest(project=project)
    if job is None:
        raise ValidationFailed(
            "The reliability aggregation needs a succeeded reliability job in this project; "
            "run one first.",
            field="params.aggregation",
        )
    return dataclasses.replace(selection, reliability_job=job.id)


def _load_posteriors(items: dict[int, ItemRow], job_id: int, low: int, high: int) -> None:
    """Pairwise posteriors of the job for the chunk's items (rating fits label no pair)."""
    posteriors = ItemPosterior.objects.filter(
        job_id=job_id, item_id__gte=low, item_id__lte=high, aspect=""
    )
    for item_id, question, unit, label, confidence in posteriors.values_list(
        "item_id", "question", "unit", "label", "confidence"
    ):
        item = items.get(item_id)
        if item is not None:
            item.posteriors[(question, unit)] = (label, confidence)


def _load_chunk(
    item_rows: list[tuple], annotations: QuerySet[Annotation], selection: Selection
) -> list[ItemRow]:
    """Responses, annotations and answers of a chunk of items, by id range (a short query, unlike an IN list).

    The range may hold items outside the selection (gold items, items not kept by a
    FiFA job); their rows are dropped here.
    """
    ids = [row[0] for row in item_rows]
    low, high = min(ids), max(ids)
    items = {
        row[0]: ItemRow(id=row[0], external_id=row[1], conversation=row[2], tags=row[3] or [])
        for row in item_rows
    }
    # An id range on an indexed column, no join: rows of other projects' items in the
    # range are dropped below by the dict look-up.
    responses = Response.objects.filter(item_id__gte=low, item_id__lte=high)
    for rid, item_id, text in responses.order_by("item_id", "position").values_list(
        "id", "item_id", "text"
    ):
        item = items.get(item_id)
        if item is not None:
            item.responses.append(ResponseRow(id=rid, text=text))
    by_id: dict[int, AnnotationRow] = {}
    in_range = annotations.filter(item_id__gte=low, item_id__lte=high).order_by("id")
    for aid, item_id, annotator_id, source, judge_name in in_range.values_list(
        "id", "item_id", "annotator_id", "source", "judge_name"
    ):
        item = items.get(item_id)
        if item is None:
            continue
        row = AnnotationRow(id=aid, annotator_id=annotator_id, source=source, judge_name=judge_name)
        by_id[aid] = row
        item.annotations.append(row)
    if by_id:
        for name, (model, row_type) in _ANSWER_TABLES.items():
            make = row_type._make
            # A semi-join on the indexed annotation_id: constant-size SQL, no scan of the answer table.
            answers = model.objects.filter(annotation_id__in=in_range.values("id"))
            for values in answers.order_by("id").values_list(*row_type._fields):
                annotation = by_id.get(values[0])
                if annotation is not None:
                    getattr(annotation, name).append(make(values))
    if selection.reliability_job is not None:
        _load_posteriors(items, selection.reliability_job, low, high)
    rows = [items[i] for i in ids]
    if selection.aggregation == "adjudicated":
        rows = _adjudicated(rows, low=low, high=high)
    return rows


_LABEL_ROWS = {
    "pairwise": ("pairwise_answers", PairwiseRow, ("chosen", "rejected", "tie", "strength")),
    "ranking": ("ranking_answers", RankingRow, ("ranking",)),
    "rating": ("rating_answers", RatingRow, ("response", "aspect", "value")),
    "correction": (
        "correction_answers",
        CorrectionRow,
        (
            "response",
            "start",
            "end",
            "original_text",
            "corrected_text",
            "category",
            "comment",
        ),
    ),
}


def _adjudicated(items: list[ItemRow], *, low: int, high: int) -> list[ItemRow]:
    """Apply each item's latest adjudication: ``drop`` leaves the item out, ``label`` replaces
    the answers to the questions it covers by one vote, the curator's; others keep the votes.
    """
    latest: dict[int, tuple[str, list | None]] = {}
    for item_id, decision, label in (
        Adjudication.objects.filter(item_id__gte=low, item_id__lte=high)
        .order_by("item_id", "id")
        .values_list("item_id", "decision", "label")
    ):
        latest[item_id] = (decision, label)
    out = []
    for item in items:
        decision, label = latest.get(item.id, (None, None))
        if decision == Decision.DROP:
            continue
        if decision == Decision.LABEL and label:
            covered = {answer["question_id"] for answer in label}
            for annotation in item.annotations:
                for name, _, _ in _LABEL_ROWS.values():
                    rows = getattr(annotation, name)
                    rows[:] = [r for r in rows if r.question_id not in covered]
            # annotator_id None and judge_name ADJUDICATOR: named ADJUDICATOR in records.
            curator = AnnotationRow(
                id=0, annotator_id=None, source=Source.HUMAN, judge_name=ADJUDICATOR
            )
            for answer in label:
                name, row_type, columns = _LABEL_ROWS[answer["kind"]]
                getattr(curator, name).extend(
                    row_type(0, answer["question_id"], *(row[c] for c in columns))
                    for row in answer["rows"]
                )
            item.annotations.append(curator)
        out.append(item)
    return out


def iter_items(*, project: Project, selection: Selection) -> Iterator[ItemRow]:
    """The selected items in id order as plain rows, read a chunk at a time (bounded memory).

    Gold and excluded items are left out; ``selection.tags`` keeps items with any of the tags,
    ``selection.item_ids`` only those items; each item carries the annotations the
    selection admits (source, dates, annotator profile). Under the ``reliability``
    aggregation each item also carries the pairwise posteriors of the selection's
    reliability job (the project's latest succeeded one when the selection names none;
    a 400 naming ``params.aggregation`` when there is none).
    """
    selection = selection_with_reliability_job(project=project, selection=selection)
    # Excluded items (explorer bulk action) never reach an export or a curation job.
    base = Item.objects.filter(project=project, is_gold=False, excluded=False).order_by("id")
    if selection.tags:
        contains = connection.features.supports_json_field_contains
        tag_q = Q()
        for tag in selection.tags:
            tag_q |= Q(tags__contains=[tag]) if contains else Q(tags__icontains=f'"{tag}"')
        base = base.filter(tag_q)
    annotations = _annotations_queryset(selection)
    columns = ("id", "external_id", "conversation", "tags")
    if selection.item_ids is not None:
        # Query a chunk of the wanted ids at a time: one IN list of 50,000 ids exceeds SQLite's limits.
        wanted = sorted(selection.item_ids)
        for start in range(0, len(wanted), CHUNK):
            rows = list(base.filter(id__in=wanted[start : start + CHUNK]).values_list(*columns))
            if rows:
                yield from _load_chunk(rows, annotations, selection)
        return
    last = 0
    while True:
        rows = list(base.filter(id__gt=last).values_list(*columns)[:CHUNK])
        if not rows:
            return
        yield from _load_chunk(rows, annotations, selection)
        last = rows[-1][0]

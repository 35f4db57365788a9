"""Turning stored annotations into preference pairs, ranked lists and pointwise rows.

This is the one place that decides what a pair is: curation jobs and exports
both read pairs from here, so they can never disagree.

- pairwise answers give pairs directly; ties are kept apart (``tie=True``);
- a K-way ranking gives all C(K,2) pairs, each weighted 1/C(K,2) for its prompt;
- ratings give a pair when two responses' scores differ by at least a threshold
  (the gap, on a 0-1 normalised scale, is kept as the margin);
- a correction gives (corrected response, original response), with its segments.

Several annotators on one item are aggregated per pair: ``majority`` (the most
voted direction, its vote share kept as ``agreement``; a split vote is dropped),
``unanimous`` (only pairs everyone agrees on), or ``all`` (every vote is its own
pair, weighted 1/votes).
"""

from __future__ import annotations

from collections import Counter, defaultdict, namedtuple
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import combinations
from types import SimpleNamespace

from django.db.models import Q, QuerySet

from annotation.models import (
    Annotation,
    CorrectionAnswer,
    Item,
    PairwiseAnswer,
    Project,
    Question,
    QuestionKind,
    RankingAnswer,
    RatingAnswer,
    Response,
    Source,
)
from annotation.pseudonyms import pseudonym
from curation.records import PointwiseRow, PreferencePair, RankedList

AGGREGATIONS = ("majority", "unanimous", "all")
SELECTION_FIELDS = (
    "source",
    "aggregation",
    "min_agreement",
    "rating_threshold",
    "rating_aspect",
    "tags",
    "created_after",
    "created_before",
    "annotator_filter",
    "questions",
    "include_ties",
)
SOURCES = ("human", "ai", "both")
CHUNK = 1000


@dataclass(frozen=True)
class Selection:
    """Which annotations feed pairs. Every field is optional; the defaults take all human labels."""

    source: str = "human"
    aggregation: str = "majority"
    min_agreement: float = 0.0
    rating_threshold: float = 0.25  # on the 0-1 normalised scale
    rating_aspect: str | None = None  # None: the mean over aspects
    tags: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    annotator_filter: dict = field(default_factory=dict)  # profile field -> value or list of values
    item_ids: frozenset[int] | None = None
    questions: tuple[str, ...] = ()
    include_ties: bool = True

    def describe(self) -> dict:
        return {
            "source": self.source,
            "aggregation": self.aggregation,
            "min_agreement": self.min_agreement,
            "rating_threshold": self.rating_threshold,
            "rating_aspect": self.rating_aspect,
            "tags": list(self.tags),
            "created_after": self.created_after.isoformat() if self.created_after else None,
            "created_before": self.created_before.isoformat() if self.created_before else None,
            "annotator_filter": self.annotator_filter,
            "items": len(self.item_ids) if self.item_ids is not None else None,
            "questions": list(self.questions),
            "include_ties": self.include_ties,
        }


def pseudonymous_annotator(annotation: Annotation, salt: str = "") -> str:
    return _pseudonym(annotation.source, annotation.judge_name, annotation.annotator_id, salt)


@lru_cache(maxsize=65536)
def _pseudonym(source: str, judge_name: str, annotator_id: int | None, salt: str) -> str:
    if source == Source.AI:
        return f"judge:{judge_name}"
    return pseudonym(annotator_id, salt)


def _annotations_queryset(project: Project, selection: Selection) -> QuerySet[Annotation]:
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


class _Rows(list):
    """A list that answers ``.all()``, so plain rows read like a prefetched relation."""

    def all(self) -> _Rows:
        return self


class _Row(SimpleNamespace):
    pass


# Plain tuples, one query per table and chunk: building model instances through
# prefetch_related costs ~100x more than the voting itself on large exports.
_ANSWER_COLUMNS = {
    "pairwise_answers": (
        PairwiseAnswer,
        ("annotation_id", "question_id", "chosen_id", "rejected_id", "tie", "strength"),
    ),
    "ranking_answers": (RankingAnswer, ("annotation_id", "question_id", "ranking")),
    "rating_answers": (
        RatingAnswer,
        ("annotation_id", "question_id", "response_id", "aspect", "value"),
    ),
    "correction_answers": (
        CorrectionAnswer,
        (
            "annotation_id",
            "question_id",
            "response_id",
            "start",
            "end",
            "original_text",
            "corrected_text",
            "category",
            "comment",
        ),
    ),
}
_ANSWER_ROWS = {
    name: namedtuple(f"{name}_row", columns) for name, (_, columns) in _ANSWER_COLUMNS.items()
}


def _load_chunk(
    project: Project, item_rows: list[tuple], annotations: QuerySet[Annotation]
) -> list[_Row]:
    """Responses, annotations and answers of a chunk of items, by id range (a short query, unlike an IN list).

    The range may hold items outside the selection (gold items, items not kept by a
    FiFA job); their rows are dropped here.
    """
    ids = [row[0] for row in item_rows]
    low, high = min(ids), max(ids)
    items = {
        row[0]: _Row(
            id=row[0],
            external_id=row[1],
            conversation=row[2],
            tags=row[3] or [],
            responses=_Rows(),
            selected_annotations=[],
        )
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
            item.responses.append(_Row(id=rid, text=text))
    by_id: dict[int, _Row] = {}
    in_range = annotations.filter(item_id__gte=low, item_id__lte=high).order_by("id")
    for aid, item_id, annotator_id, source, judge_name in in_range.values_list(
        "id", "item_id", "annotator_id", "source", "judge_name"
    ):
        item = items.get(item_id)
        if item is None:
            continue
        row = _Row(
            id=aid,
            annotator_id=annotator_id,
            source=source,
            judge_name=judge_name,
            **{name: _Rows() for name in _ANSWER_COLUMNS},
        )
        by_id[aid] = row
        item.selected_annotations.append(row)
    if by_id:
        for name, (model, columns) in _ANSWER_COLUMNS.items():
            make = _ANSWER_ROWS[name]._make
            # A semi-join on the indexed annotation_id: constant-size SQL, no scan of the answer table.
            answers = model.objects.filter(annotation_id__in=in_range.values("id"))
            for values in answers.order_by("id").values_list(*columns):
                annotation = by_id.get(values[0])
                if annotation is not None:
                    getattr(annotation, name).append(make(values))
    return [items[i] for i in ids]


def _items(project: Project, selection: Selection) -> Iterator[list[_Row]]:
    """Items in id order, in chunks, with responses and selected annotations as plain rows (bounded memory)."""
    base = Item.objects.filter(project=project, is_gold=False).order_by("id")
    if selection.tags:
        tag_q = Q()
        for tag in selection.tags:
            tag_q |= (
                Q(tags__contains=[tag])
                if _json_contains_supported()
                else Q(tags__icontains=f'"{tag}"')
            )
        base = base.filter(tag_q)
    annotations = _annotations_queryset(project, selection)
    columns = ("id", "external_id", "conversation", "tags")
    if selection.item_ids is not None:
        # Query a chunk of the wanted ids at a time: one IN list of 50,000 ids exceeds SQLite's limits.
        wanted = sorted(selection.item_ids)
        for start in range(0, len(wanted), CHUNK):
            rows = list(base.filter(id__in=wanted[start : start + CHUNK]).values_list(*columns))
            if rows:
                yield _load_chunk(project, rows, annotations)
        return
    last = 0
    while True:
        rows = list(base.filter(id__gt=last).values_list(*columns)[:CHUNK])
        if not rows:
            return
        yield _load_chunk(project, rows, annotations)
        last = rows[-1][0]


def _json_contains_supported() -> bool:
    from django.db import connection

    return connection.features.supports_json_field_contains


@dataclass
class _Vote:
    preferred: int | None  # response id preferred; None for a tie
    other: int
    first: int
    margin: float | None
    weight: float
    annotator: str
    source: str


def _aggregate(
    votes: list[_Vote], selection: Selection
) -> list[tuple[int | None, int, int, float | None, float, float, int, list[str], str]]:
    """Aggregate votes on one unordered pair into (chosen, rejected, tie, margin, weight, agreement, votes, annotators, source)."""
    if not votes:
        return []
    sources = {v.source for v in votes}
    source = sources.pop() if len(sources) == 1 else "mixed"
    annotators = sorted({v.annotator for v in votes})
    if selection.aggregation == "all":
        out = []
        for vote in votes:
            chosen = vote.preferred if vote.preferred is not None else vote.first
            rejected = vote.other if vote.preferred is not None else _other(vote)
            out.append(
                (
                    chosen,
                    rejected,
                    vote.preferred is None,
                    vote.margin,
                    vote.weight / len(votes),
                    1.0,
                    1,
                    [vote.annotator],
                    vote.source,
                )
            )
        return out
    counts = Counter(v.preferred for v in votes)
    ranked = counts.most_common()
    winner, top = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == top:
        return []  # a split vote carries no preference
    agreement = top / len(votes)
    if selection.aggregation == "unanimous" and agreement < 1.0:
        return []
    if agreement < selection.min_agreement:
        return []
    winners = [v for v in votes if v.preferred == winner]
    margins = [v.margin for v in winners if v.margin is not None]
    margin = sum(margins) / len(margins) if margins else None
    weight = sum(v.weight for v in winners) / len(winners)
    if winner is None:
        sample = winners[0]
        return [
            (
                sample.first,
                _other(sample),
                True,
                None,
                weight,
                agreement,
                len(votes),
                annotators,
                source,
            )
        ]
    loser = next(v.other if v.preferred == winner else v.preferred for v in winners)
    return [(winner, loser, False, margin, weight, agreement, len(votes), annotators, source)]


def _other(vote: _Vote) -> int:
    return vote.other if vote.first != vote.other else vote.first


def _normalised(value: float, scale: dict) -> float:
    low, high = float(scale["min"]), float(scale["max"])
    return (value - low) / (high - low) if high > low else 0.0


def _apply_corrections(text: str, corrections: list) -> str:
    out, cursor = [], 0
    for c in sorted(corrections, key=lambda c: c.start):
        out.append(text[cursor : c.start])
        out.append(c.corrected_text)
        cursor = c.end
    out.append(text[cursor:])
    return "".join(out)


def iter_preference_pairs(
    *, project: Project, selection: Selection | None = None
) -> Iterator[PreferencePair]:
    """Every aggregated preference pair of the project, item by item, in a stable order."""
    selection = selection or Selection()
    questions = {q.id: q for q in Question.objects.filter(project=project)}
    wanted = {
        q.id for q in questions.values() if not selection.questions or q.name in selection.questions
    }
    salt = str(project.id)
    for chunk in _items(project, selection):
        for item in chunk:
            yield from _item_pairs(item, questions, wanted, selection, salt)


def _item_pairs(
    item: Item, questions: dict[int, Question], wanted: set[int], selection: Selection, salt: str
) -> Iterator[PreferencePair]:
    texts = {r.id: r.text for r in item.responses.all()}
    annotations = item.selected_annotations
    if not annotations:
        return
    votes: dict[tuple[int, str, str], list[_Vote]] = defaultdict(list)
    corrections_out: list[PreferencePair] = []
    rating_cells: dict[tuple[int, str], dict[int, list[tuple[float, str, str]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for annotation in annotations:
        who = pseudonymous_annotator(annotation, salt)
        source = annotation.source
        for answer in annotation.pairwise_answers.all():
            if answer.question_id not in wanted:
                continue
            a, b = sorted((answer.chosen_id, answer.rejected_id))
            votes[(answer.question_id, f"{a}-{b}", "pairwise")].append(
                _Vote(
                    None if answer.tie else answer.chosen_id,
                    answer.rejected_id if not answer.tie else b,
                    a,
                    answer.strength,
                    1.0,
                    who,
                    source,
                )
            )
        for answer in annotation.ranking_answers.all():
            if answer.question_id not in wanted:
                continue
            position = {rid: rank for rank, group in enumerate(answer.ranking) for rid in group}
            total = len(position)
            weight = 1.0 / (total * (total - 1) / 2) if total > 1 else 1.0
            for a, b in combinations(sorted(position), 2):
                if position[a] == position[b]:
                    preferred, other = None, b
                elif position[a] < position[b]:
                    preferred, other = a, b
                else:
                    preferred, other = b, a
                margin = float(abs(position[a] - position[b])) if preferred is not None else None
                votes[(answer.question_id, f"{a}-{b}", "ranking")].append(
                    _Vote(preferred, other, a, margin, weight, who, source)
                )
        for answer in annotation.rating_answers.all():
            if answer.question_id not in wanted:
                continue
            question = questions[answer.question_id]
            scale = (
                next(
                    (
                        a.get("scale")
                        for a in question.config["aspects"]
                        if a["name"] == answer.aspect
                    ),
                    None,
                )
                or question.config["scale"]
            )
            if selection.rating_aspect and answer.aspect != selection.rating_aspect:
                continue
            rating_cells[(answer.question_id, who)][answer.response_id].append(
                (_normalised(answer.value, scale), who, source)
            )
        by_response: dict[int, list] = defaultdict(list)
        for answer in annotation.correction_answers.all():
            if answer.question_id in wanted and answer.corrected_text != answer.original_text:
                by_response[(answer.question_id, answer.response_id)].append(answer)
        for (question_id, response_id), corrections in by_response.items():
            original = texts[response_id]
            corrections_out.append(
                PreferencePair(
                    item_id=item.id,
                    external_id=item.external_id,
                    prompt=item.conversation,
                    chosen_text=_apply_corrections(original, corrections),
                    rejected_text=original,
                    chosen_response_id=None,
                    rejected_response_id=response_id,
                    kind=QuestionKind.CORRECTION,
                    question=questions[question_id].name,
                    margin=None,
                    agreement=1.0,
                    votes=1,
                    annotators=(who,),
                    source=source,
                    segments=tuple(
                        {
                            "start": c.start,
                            "end": c.end,
                            "original": c.original_text,
                            "corrected": c.corrected_text,
                            "category": c.category,
                            "comment": c.comment,
                        }
                        for c in sorted(corrections, key=lambda c: c.start)
                    ),
                    tags=tuple(item.tags),
                )
            )
    # Ratings: each annotator's (mean over aspects) score per response gives them a vote per response pair.
    for (question_id, who), per_response in rating_cells.items():
        means = {
            rid: sum(v for v, _, _ in cells) / len(cells) for rid, cells in per_response.items()
        }
        source = next(iter(per_response.values()))[0][2]
        for a, b in combinations(sorted(means), 2):
            gap = means[a] - means[b]
            if abs(gap) < selection.rating_threshold:
                preferred, other = None, b
                margin = None
            else:
                preferred, other = (a, b) if gap > 0 else (b, a)
                margin = abs(gap)
            votes[(question_id, f"{a}-{b}", "rating")].append(
                _Vote(preferred, other, a, margin, 1.0, who, source)
            )
    for (question_id, _, kind), pair_votes in sorted(
        votes.items(), key=lambda kv: (kv[0][0], kv[0][1])
    ):
        for (
            chosen,
            rejected,
            tie,
            margin,
            weight,
            agreement,
            count,
            annotators,
            source,
        ) in _aggregate(pair_votes, selection):
            if tie and (kind == "rating" or not selection.include_ties):
                continue  # a rating gap under the threshold is no preference at all
            yield PreferencePair(
                item_id=item.id,
                external_id=item.external_id,
                prompt=item.conversation,
                chosen_text=texts[chosen],
                rejected_text=texts[rejected],
                chosen_response_id=chosen,
                rejected_response_id=rejected,
                kind=kind,
                question=questions[question_id].name,
                aspect=(selection.rating_aspect or "mean") if kind == "rating" else None,
                tie=tie,
                margin=margin,
                weight=weight,
                agreement=agreement,
                votes=count,
                annotators=tuple(annotators),
                source=source,
                tags=tuple(item.tags),
            )
    yield from corrections_out


def pair_key(pair: PreferencePair) -> str:
    """A stable key for a pair within one project (kind, question, item, responses)."""
    return f"{pair.kind}:{pair.question}:{pair.item_id}:{pair.chosen_response_id or 'c'}:{pair.rejected_response_id}:{pair.annotators[0] if pair.kind == 'correction' and pair.annotators else ''}"[
        :200
    ]


def iter_ranked_lists(
    *, project: Project, selection: Selection | None = None
) -> Iterator[RankedList]:
    """Per item and ranking question: responses best first by mean Borda score over annotators."""
    selection = selection or Selection()
    questions = {
        q.id: q for q in Question.objects.filter(project=project, kind=QuestionKind.RANKING)
    }
    salt = str(project.id)
    for chunk in _items(project, selection):
        for item in chunk:
            texts = {r.id: r.text for r in item.responses.all()}
            per_question: dict[int, list[tuple[list, str, str]]] = defaultdict(list)
            for annotation in item.selected_annotations:
                for answer in annotation.ranking_answers.all():
                    if answer.question_id in questions:
                        per_question[answer.question_id].append(
                            (
                                answer.ranking,
                                pseudonymous_annotator(annotation, salt),
                                annotation.source,
                            )
                        )
            for question_id, rankings in per_question.items():
                scores: dict[int, float] = defaultdict(float)
                for ranking, _, _ in rankings:
                    total = sum(len(g) for g in ranking)
                    seen = 0
                    for group in ranking:
                        # Borda with ties sharing the mean of their positions' points.
                        points = sum(total - 1 - (seen + i) for i in range(len(group))) / len(group)
                        for rid in group:
                            scores[rid] += points / max(total - 1, 1)
                        seen += len(group)
                order = sorted(scores, key=lambda rid: (-scores[rid], rid))
                first_choices = Counter(r[0][0][0] for r in rankings if r[0] and len(r[0][0]) == 1)
                agreement = (
                    (first_choices.most_common(1)[0][1] / len(rankings)) if first_choices else 0.0
                )
                if agreement < selection.min_agreement:
                    continue
                sources = {s for _, _, s in rankings}
                yield RankedList(
                    item_id=item.id,
                    external_id=item.external_id,
                    prompt=item.conversation,
                    responses=tuple(texts[rid] for rid in order),
                    response_ids=tuple(order),
                    scores=tuple(round(scores[rid] / len(rankings), 6) for rid in order),
                    question=questions[question_id].name,
                    agreement=agreement,
                    votes=len(rankings),
                    annotators=tuple(sorted({a for _, a, _ in rankings})),
                    source=sources.pop() if len(sources) == 1 else "mixed",
                    tags=tuple(item.tags),
                )


def iter_pointwise_rows(
    *, project: Project, selection: Selection | None = None
) -> Iterator[PointwiseRow]:
    """Per response and rating question: each aspect's mean over annotators."""
    selection = selection or Selection()
    questions = {
        q.id: q for q in Question.objects.filter(project=project, kind=QuestionKind.RATING)
    }
    salt = str(project.id)
    for chunk in _items(project, selection):
        for item in chunk:
            responses = {r.id: r for r in item.responses.all()}
            cells: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(
                lambda: defaultdict(list)
            )
            raters: dict[tuple[int, int], set[str]] = defaultdict(set)
            sources: dict[tuple[int, int], set[str]] = defaultdict(set)
            for annotation in item.selected_annotations:
                who = pseudonymous_annotator(annotation, salt)
                for answer in annotation.rating_answers.all():
                    if answer.question_id in questions:
                        key = (answer.question_id, answer.response_id)
                        cells[key][answer.aspect].append(answer.value)
                        raters[key].add(who)
                        sources[key].add(annotation.source)
            for (question_id, response_id), aspects in sorted(cells.items()):
                question = questions[question_id]
                scale = question.config["scale"]
                yield PointwiseRow(
                    item_id=item.id,
                    external_id=item.external_id,
                    prompt=item.conversation,
                    response=responses[response_id].text,
                    response_id=response_id,
                    scores={aspect: sum(v) / len(v) for aspect, v in aspects.items()},
                    question=question.name,
                    scale=(float(scale["min"]), float(scale["max"])),
                    votes=len(raters[(question_id, response_id)]),
                    annotators=tuple(sorted(raters[(question_id, response_id)])),
                    source=(lambda s: s.pop() if len(s) == 1 else "mixed")(
                        set(sources[(question_id, response_id)])
                    ),
                    tags=tuple(item.tags),
                )


def selection_from_params(params: dict, *, item_ids: Iterable[int] | None = None) -> Selection:
    """Build a Selection from API/CLI parameters, checking each strictly.

    Raises ``ValidationFailed`` naming ``params.<key>`` and the reason: wrong types,
    impossible dates and out-of-range numbers are refused here, before a job is stored.
    """
    from annotation.errors import ValidationFailed
    from annotation.services.projects import PROFILE_FIELDS
    from curation import params as check

    values = {"source": "human", "aggregation": "majority", **params}
    source = check.choice(values, "source", SOURCES)
    aggregation = check.choice(values, "aggregation", AGGREGATIONS)
    min_agreement = check.number(
        {"min_agreement": 0.0, **params}, "min_agreement", low=0.0, high=1.0
    )
    threshold = check.number(
        {"rating_threshold": 0.25, **params}, "rating_threshold", low=0.0, high=1.0
    )
    tags = check.string_list(params, "tags")
    questions = check.string_list(params, "questions")
    rating_aspect = check.string(params, "rating_aspect", nullable=True) or None
    include_ties = check.boolean({"include_ties": True, **params}, "include_ties")
    annotator_filter = params.get("annotator_filter") or {}
    if not isinstance(annotator_filter, dict):
        raise ValidationFailed(
            "annotator_filter maps profile fields to values.", field="params.annotator_filter"
        )
    scalar = (str, int, float, bool)
    for key, value in annotator_filter.items():
        if key not in PROFILE_FIELDS or key in (
            "stated_preferences",
            "self_description",
            "languages",
            "expertise",
        ):
            raise ValidationFailed(
                f"Cannot filter annotators by {key!r}.", field=f"params.annotator_filter.{key}"
            )
        values_ok = (
            all(isinstance(v, scalar) for v in value) and len(value) <= check.MAX_LIST_LENGTH
            if isinstance(value, list)
            else isinstance(value, scalar)
        )
        if not values_ok:
            raise ValidationFailed(
                f"annotator_filter.{key} must be a value or a list of values.",
                field=f"params.annotator_filter.{key}",
            )
    created_after = check.timestamp(params, "created_after")
    created_before = check.timestamp(params, "created_before")
    if created_after and created_before and created_after >= created_before:
        raise ValidationFailed(
            "created_after must be earlier than created_before.", field="params.created_after"
        )
    return Selection(
        source=source,
        aggregation=aggregation,
        min_agreement=min_agreement,
        rating_threshold=threshold,
        rating_aspect=rating_aspect,
        tags=tuple(tags),
        created_after=created_after,
        created_before=created_before,
        annotator_filter=annotator_filter,
        item_ids=frozenset(item_ids) if item_ids is not None else None,
        questions=tuple(questions),
        include_ties=include_ties,
    )

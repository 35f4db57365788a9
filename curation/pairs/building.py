"""Building preference pairs, ranked lists and pointwise rows from loaded items.

The ``iter_*`` functions walk the items that :mod:`curation.pairs.loading`
reads; the ``item_*`` functions turn one item's plain rows into records with the
pure vote functions of :mod:`curation.pairs.aggregation`, so they run no query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from annotation.models import Project, QuestionKind, Source
from annotation.pseudonyms import pseudonym
from curation.pairs.aggregation import (
    AggregatedPair,
    Vote,
    aggregate_votes,
    borda_scores,
    combined_source,
    first_choice_agreement,
    normalised,
    pairwise_vote,
    posterior_pair,
    ranking_votes,
    rating_votes,
)
from curation.pairs.loading import iter_items, questions_by_id
from curation.pairs.rows import CorrectionRow, ItemRow
from curation.pairs.selection import Selection
from curation.records import PointwiseRow, PreferencePair, RankedList


class QuestionLike(Protocol):
    """What pair building reads of a question (a ``Question`` row, or a stand-in in tests)."""

    id: int
    name: str
    config: dict[str, Any]


class AnnotationLike(Protocol):
    source: str
    judge_name: str
    annotator_id: int | None


def pseudonymous_annotator(annotation: AnnotationLike, salt: str = "") -> str:
    """Who made an annotation, as exports and reports show it: a pseudonym, or ``judge:<name>``."""
    return _pseudonym(annotation.source, annotation.judge_name, annotation.annotator_id, salt)


@lru_cache(maxsize=65536)
def _pseudonym(source: str, judge_name: str, annotator_id: int | None, salt: str) -> str:
    if source == Source.AI:
        return f"judge:{judge_name}"
    if annotator_id is None:
        # A curator's adjudicated label (curation.pairs.loading): named, never pseudonymised.
        return judge_name
    return pseudonym(annotator_id, salt)


def pair_key(pair: PreferencePair) -> str:
    """A stable key for a pair within one project (kind, question, item, responses)."""
    return f"{pair.kind}:{pair.question}:{pair.item_id}:{pair.chosen_response_id or 'c'}:{pair.rejected_response_id}:{pair.annotators[0] if pair.kind == 'correction' and pair.annotators else ''}"[
        :200
    ]


def apply_corrections(text: str, corrections: Sequence[CorrectionRow]) -> str:
    """``text`` with each corrected span replaced by its correction (spans do not overlap)."""
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
    questions = questions_by_id(project=project)
    wanted = {
        q.id for q in questions.values() if not selection.questions or q.name in selection.questions
    }
    salt = str(project.id)
    for item in iter_items(project=project, selection=selection):
        yield from item_preference_pairs(
            item, questions=questions, wanted=wanted, selection=selection, salt=salt
        )


def _rating_scale(question: QuestionLike, aspect: str) -> dict:
    # An aspect may carry its own scale; otherwise the question's applies.
    own = next((a.get("scale") for a in question.config["aspects"] if a["name"] == aspect), None)
    return own or question.config["scale"]


def _correction_pair(
    item: ItemRow,
    question: QuestionLike,
    original: str,
    response_id: int,
    corrections: list[CorrectionRow],
    who: str,
    source: str,
) -> PreferencePair:
    ordered = sorted(corrections, key=lambda c: c.start)
    return PreferencePair(
        item_id=item.id,
        external_id=item.external_id,
        prompt=item.conversation,
        chosen_text=apply_corrections(original, corrections),
        rejected_text=original,
        chosen_response_id=None,
        rejected_response_id=response_id,
        kind=QuestionKind.CORRECTION,
        question=question.name,
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
            for c in ordered
        ),
        tags=tuple(item.tags),
    )


def item_preference_pairs(
    item: ItemRow,
    *,
    questions: Mapping[int, QuestionLike],
    wanted: set[int],
    selection: Selection,
    salt: str,
) -> Iterator[PreferencePair]:
    """One item's pairs: its votes aggregated per question and response pair, then its corrections.

    Pairs come in a stable order (question id, then pair key); corrections, one pair
    per annotator and corrected response, come last.
    """
    if not item.annotations:
        return
    texts = {r.id: r.text for r in item.responses}
    votes: dict[tuple[int, str, str], list[Vote]] = defaultdict(list)
    corrections_out: list[PreferencePair] = []
    # (question, annotator) -> response -> normalised scores (one per aspect), and the source.
    rating_cells: dict[tuple[int, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    rating_sources: dict[tuple[int, str], str] = {}
    for annotation in item.annotations:
        who = pseudonymous_annotator(annotation, salt)
        source = annotation.source
        for answer in annotation.pairwise_answers:
            if answer.question_id not in wanted:
                continue
            key, vote = pairwise_vote(
                chosen=answer.chosen_id,
                rejected=answer.rejected_id,
                tie=answer.tie,
                strength=answer.strength,
                annotator=who,
                source=source,
            )
            votes[(answer.question_id, key, "pairwise")].append(vote)
        for answer in annotation.ranking_answers:
            if answer.question_id not in wanted:
                continue
            for key, vote in ranking_votes(answer.ranking, annotator=who, source=source):
                votes[(answer.question_id, key, "ranking")].append(vote)
        for answer in annotation.rating_answers:
            if answer.question_id not in wanted:
                continue
            scale = _rating_scale(questions[answer.question_id], answer.aspect)
            if selection.rating_aspect and answer.aspect != selection.rating_aspect:
                continue
            cell = (answer.question_id, who)
            rating_cells[cell][answer.response_id].append(normalised(answer.value, scale))
            rating_sources.setdefault(cell, source)
        by_response: dict[tuple[int, int], list[CorrectionRow]] = defaultdict(list)
        for answer in annotation.correction_answers:
            if answer.question_id in wanted and answer.corrected_text != answer.original_text:
                by_response[(answer.question_id, answer.response_id)].append(answer)
        for (question_id, response_id), corrections in by_response.items():
            corrections_out.append(
                _correction_pair(
                    item,
                    questions[question_id],
                    texts[response_id],
                    response_id,
                    corrections,
                    who,
                    source,
                )
            )
    # Ratings: each annotator's (mean over aspects) score per response gives them a vote per response pair.
    for (question_id, who), per_response in rating_cells.items():
        means = {rid: sum(cells) / len(cells) for rid, cells in per_response.items()}
        for key, vote in rating_votes(
            means,
            threshold=selection.rating_threshold,
            annotator=who,
            source=rating_sources[(question_id, who)],
        ):
            votes[(question_id, key, "rating")].append(vote)
    for (question_id, key, kind), pair_votes in sorted(
        votes.items(), key=lambda kv: (kv[0][0], kv[0][1])
    ):
        for label in _aggregated(
            pair_votes, item.posteriors.get((questions[question_id].name, key)), kind, selection
        ):
            if label.tie and (kind == "rating" or not selection.include_ties):
                continue  # a rating gap under the threshold is no preference at all
            yield PreferencePair(
                item_id=item.id,
                external_id=item.external_id,
                prompt=item.conversation,
                chosen_text=texts[label.chosen],
                rejected_text=texts[label.rejected],
                chosen_response_id=label.chosen,
                rejected_response_id=label.rejected,
                kind=kind,
                question=questions[question_id].name,
                aspect=(selection.rating_aspect or "mean") if kind == "rating" else None,
                tie=label.tie,
                margin=label.margin,
                weight=label.weight,
                agreement=label.agreement,
                votes=label.votes,
                annotators=label.annotators,
                source=label.source,
                tags=tuple(item.tags),
            )
    yield from corrections_out


def _aggregated(
    votes: list[Vote], posterior: tuple[int, float] | None, kind: str, selection: Selection
) -> list[AggregatedPair]:
    """A pair's labels under the selection's policy. ``reliability`` takes the fit's
    posterior for pairwise votes; ranking- and rating-derived pairs, and pairs voted on
    after the fit, have none and are counted like ``majority``."""
    if selection.aggregation == "reliability":
        if posterior is not None and kind == "pairwise":
            label, confidence = posterior
            return posterior_pair(
                votes, label=label, confidence=confidence, min_agreement=selection.min_agreement
            )
        return aggregate_votes(votes, aggregation="majority", min_agreement=selection.min_agreement)
    return aggregate_votes(
        votes, aggregation=selection.aggregation, min_agreement=selection.min_agreement
    )


def iter_ranked_lists(
    *, project: Project, selection: Selection | None = None
) -> Iterator[RankedList]:
    """Per item and ranking question: responses best first by mean Borda score over annotators."""
    selection = selection or Selection()
    questions = questions_by_id(project=project, kind=QuestionKind.RANKING)
    salt = str(project.id)
    for item in iter_items(project=project, selection=selection):
        yield from item_ranked_lists(
            item, questions=questions, min_agreement=selection.min_agreement, salt=salt
        )


def item_ranked_lists(
    item: ItemRow, *, questions: Mapping[int, QuestionLike], min_agreement: float, salt: str
) -> Iterator[RankedList]:
    """One item's ranked list per ranking question in ``questions``, if agreement reaches ``min_agreement``."""
    texts = {r.id: r.text for r in item.responses}
    per_question: dict[int, list[tuple[list, str, str]]] = defaultdict(list)
    for annotation in item.annotations:
        for answer in annotation.ranking_answers:
            if answer.question_id in questions:
                per_question[answer.question_id].append(
                    (answer.ranking, pseudonymous_annotator(annotation, salt), annotation.source)
                )
    for question_id, rankings in per_question.items():
        scores = borda_scores(ranking for ranking, _, _ in rankings)
        order = sorted(scores, key=lambda rid: (-scores[rid], rid))
        agreement = first_choice_agreement([ranking for ranking, _, _ in rankings])
        if agreement < min_agreement:
            continue
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
            source=combined_source({s for _, _, s in rankings}),
            tags=tuple(item.tags),
        )


def iter_pointwise_rows(
    *, project: Project, selection: Selection | None = None
) -> Iterator[PointwiseRow]:
    """Per response and rating question: each aspect's mean over annotators."""
    selection = selection or Selection()
    questions = questions_by_id(project=project, kind=QuestionKind.RATING)
    salt = str(project.id)
    for item in iter_items(project=project, selection=selection):
        yield from item_pointwise_rows(item, questions=questions, salt=salt)


def item_pointwise_rows(
    item: ItemRow, *, questions: Mapping[int, QuestionLike], salt: str
) -> Iterator[PointwiseRow]:
    """One item's rated responses, one row per rating question in ``questions`` and response."""
    texts = {r.id: r.text for r in item.responses}
    cells: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    raters: dict[tuple[int, int], set[str]] = defaultdict(set)
    sources: dict[tuple[int, int], set[str]] = defaultdict(set)
    for annotation in item.annotations:
        who = pseudonymous_annotator(annotation, salt)
        for answer in annotation.rating_answers:
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
            response=texts[response_id],
            response_id=response_id,
            scores={aspect: sum(v) / len(v) for aspect, v in aspects.items()},
            question=question.name,
            scale=(float(scale["min"]), float(scale["max"])),
            votes=len(raters[(question_id, response_id)]),
            annotators=tuple(sorted(raters[(question_id, response_id)])),
            source=combined_source(sources[(question_id, response_id)]),
            tags=tuple(item.tags),
        )

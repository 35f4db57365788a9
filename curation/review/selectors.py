"""Reads of the review queue, scoped to the caller's projects (admins and curators)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from annotation.errors import NotFound, ValidationFailed
from annotation.models import Annotation, Item, Project, QuestionKind
from annotation.pseudonyms import pseudonym
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.models import Adjudication, Decision, ReviewEntry, ReviewSource
from curation.pairs import Selection, iter_preference_pairs, iter_ranked_lists

STATES = ("open", "resolved", "all")
# For serializers and pages, which import no models.
SOURCES = ReviewSource.choices
DECISIONS = Decision.choices


def review_filters_clean(params: Any) -> tuple[str, str]:
    """The queue's ``source`` and ``state`` filters from query parameters; a 400 names a bad one."""
    source = str(params.get("source") or "").strip()
    if source and source not in ReviewSource.values:
        raise ValidationFailed(
            f"source must be one of {', '.join(ReviewSource.values)}.", field="source"
        )
    state = str(params.get("state") or "open").strip()
    if state not in STATES:
        raise ValidationFailed(f"state must be one of {', '.join(STATES)}.", field="state")
    return source, state


def review_entry_list_for(
    *, project: Project, source: str = "", state: str = "open"
) -> QuerySet[ReviewEntry]:
    """A project's review entries, newest first, with item and adjudication joined."""
    entries = (
        ReviewEntry.objects.filter(item__project=project)
        .select_related("item", "adjudication", "job")
        .defer("item__search_text", "item__search_vector", "item__gold_answer", "item__metadata")
    )
    if source:
        entries = entries.filter(source=source)
    if state == "open":
        entries = entries.filter(resolved_at__isnull=True)
    elif state == "resolved":
        entries = entries.filter(resolved_at__isnull=False)
    return entries


def review_counts(*, project: Project) -> dict[str, dict[str, int]]:
    """Open and resolved entries per source."""
    counts = {s: {"open": 0, "resolved": 0} for s in ReviewSource.values}
    for row in (
        ReviewEntry.objects.filter(item__project=project)
        .order_by()
        .values("source")
        .annotate(
            open=Count("id", filter=Q(resolved_at__isnull=True)),
            resolved=Count("id", filter=Q(resolved_at__isnull=False)),
        )
    ):
        counts.setdefault(row["source"], {"open": 0, "resolved": 0})
        counts[row["source"]] = {"open": row["open"], "resolved": row["resolved"]}
    return counts


def review_entry_get_for(
    *, user: AbstractBaseUser, project_id: int | str, entry_id: int | str
) -> tuple[ReviewEntry, str]:
    """One entry of a project the user curates, and their role; 404 for outsiders, 403 for annotators."""
    project, role = project_get_for(user=user, project_id=project_id, roles=STAFF_ROLES)
    try:
        pk = int(entry_id)
    except (TypeError, ValueError):
        raise NotFound("No such entry.") from None
    entry = (
        ReviewEntry.objects.select_related("item", "item__project", "job")
        .filter(item__project=project, pk=pk)
        .first()
    )
    if entry is None:
        raise NotFound("No such entry.")
    return entry, role


def review_entry_next(*, entry: ReviewEntry) -> ReviewEntry | None:
    """The next open entry of the same project after ``entry`` (queue order: newest first)."""
    return (
        ReviewEntry.objects.filter(
            item__project_id=entry.item.project_id, resolved_at__isnull=True, id__lt=entry.id
        )
        .order_by("-id")
        .only("id")
        .first()
        or ReviewEntry.objects.filter(
            item__project_id=entry.item.project_id, resolved_at__isnull=True
        )
        .exclude(pk=entry.pk)
        .order_by("-id")
        .only("id")
        .first()
    )


def adjudication_of(*, entry: ReviewEntry) -> Adjudication | None:
    return Adjudication.objects.filter(entry=entry).select_related("decided_by").first()


def item_aggregate(*, item: Item) -> list[dict[str, Any]]:
    """What the majority of people says on the item: its pairs, and its rankings by Borda count.

    The same pair building that exports use, for this one item, so "accept the
    aggregate" means exactly what a ``majority`` export will hold.
    """
    selection = Selection(item_ids=frozenset([item.id]))
    project = item.project
    out: list[dict[str, Any]] = []
    for pair in iter_preference_pairs(project=project, selection=selection):
        if pair.kind == QuestionKind.CORRECTION:
            continue
        out.append(
            {
                "question": pair.question,
                "kind": pair.kind,
                "chosen": pair.chosen_response_id,
                "rejected": pair.rejected_response_id,
                "tie": pair.tie,
                "agreement": pair.agreement,
                "votes": pair.votes,
            }
        )
    for ranked in iter_ranked_lists(project=project, selection=selection):
        out.append(
            {
                "question": ranked.question,
                "kind": "ranked_list",
                "order": list(ranked.response_ids),
                "agreement": ranked.agreement,
                "votes": ranked.votes,
            }
        )
    return out


def annotation_answers(annotation: Annotation) -> list[dict[str, Any]]:
    """An annotation's answers in the submission shape (response ids), for "choose this label"."""
    by_question: dict[int, dict[str, Any]] = {}
    for row in annotation.pairwise_answers.all():
        answer = {"question": row.question_id, "chosen": row.chosen_id, "rejected": row.rejected_id}
        answer["tie"] = row.tie
        if row.strength is not None:
            answer["strength"] = row.strength
        by_question[row.question_id] = answer
    for row in annotation.ranking_answers.all():
        by_question[row.question_id] = {"question": row.question_id, "ranking": row.ranking}
    for row in annotation.rating_answers.all():
        by_question.setdefault(row.question_id, {"question": row.question_id, "ratings": []})[
            "ratings"
        ].append({"response": row.response_id, "aspect": row.aspect, "value": row.value})
    for row in annotation.correction_answers.all():
        by_question.setdefault(row.question_id, {"question": row.question_id, "corrections": []})[
            "corrections"
        ].append(
            {
                "response": row.response_id,
                "start": row.start,
                "end": row.end,
                "original_text": row.original_text,
                "corrected_text": row.corrected_text,
                "category": row.category,
                "comment": row.comment,
            }
        )
    return list(by_question.values())


def label_answers(adjudication: Adjudication) -> list[dict[str, Any]]:
    """A stored adjudicated label back in the submission shape (what the page and the API show)."""
    out = []
    for entry in adjudication.label or []:
        rows = entry["rows"]
        answer: dict[str, Any] = {"question": entry["question"]}
        if entry["kind"] == QuestionKind.PAIRWISE:
            answer.update({k: v for k, v in rows[0].items() if v is not None})
        elif entry["kind"] == QuestionKind.RANKING:
            answer["ranking"] = rows[0]["ranking"]
        elif entry["kind"] == QuestionKind.RATING:
            answer["ratings"] = rows
        else:
            answer["corrections"] = rows
        out.append(answer)
    return out


def item_annotator_names(*, item: Item) -> list[str]:
    """The pseudonyms of the people who annotated ``item``, in the order they answered."""
    ids = (
        Annotation.objects.filter(item=item, annotator__isnull=False)
        .order_by("id")
        .values_list("annotator_id", flat=True)
    )
    return list(dict.fromkeys(pseudonym(uid, str(item.project_id)) for uid in ids))

"""The review queue's writes: the feeds that put items in it, and the resolution of an entry.

Feeds (each records why: ``reason``, ``source``, ``job`` and the ``scores`` that sent it):

- :func:`review_entries_from_job`: the items of a suspect-label job's flagged pairs;
- :func:`review_entries_from_agreement`: items whose stored agreement is under a threshold;
- :func:`event_receive`: an answer to a gold item that missed the expected answer
  (annotation publishes ``gold.failed``; curation listens, annotation never imports it);
- the explorer's bulk action (``curation.explorer``);
- ``curation.explanations.services.review_entries_from_feature``: the items of the
  pairs where a feature of an explanation job is most active (the feature is the reason).

At most one open entry per item and source: a partial unique constraint, and every feed
inserts with ``ignore_conflicts``, so a feed run twice (or two racing) adds nothing twice.

Resolving (:func:`review_entry_resolve`) writes an :class:`Adjudication` and never
touches annotations. It locks the entry row, so of two concurrent resolutions one wins
and the other, if it asked for the same thing, gets the first one back (double-submit
safe); if it asked for something else it is a ``Conflict``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation.errors import Conflict, ValidationFailed
from annotation.models import AnnotatorMessage, Item, Project, Question, Response
from annotation.services import answers_validate
from annotation.services.feedback import annotator_message_send
from annotation.services.overlap import request_more_votes
from curation.models import (
    Adjudication,
    Decision,
    Job,
    JobKind,
    JobStatus,
    PairScore,
    ReviewEntry,
    ReviewSource,
)

log = logging.getLogger(__name__)

CHUNK = 1000
MAX_REASON = 500
MAX_VOTES = 10
PAIRS_KEPT = 10  # flagged pairs recorded per entry (the highest confidence first)
FAILURES_KEPT = 20  # gold failures recorded on one open entry


def review_entries_add(
    *,
    source: str,
    rows: Mapping[int, tuple[str, dict[str, Any]]],
    job: Job | None = None,
    user: AbstractBaseUser | None = None,
) -> int:
    """Insert one open entry per item of ``rows`` (item id -> (reason, scores)); returns how many were new."""
    added = 0
    ids = sorted(rows)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        open_ids = set(
            ReviewEntry.objects.filter(
                item_id__in=chunk, source=source, resolved_at__isnull=True
            ).values_list("item_id", flat=True)
        )
        fresh = [i for i in chunk if i not in open_ids]
        # ignore_conflicts: an entry opened between the read above and this insert wins.
        ReviewEntry.objects.bulk_create(
            [
                ReviewEntry(
                    item_id=item_id,
                    source=source,
                    reason=rows[item_id][0][:MAX_REASON],
                    scores=rows[item_id][1],
                    job=job,
                    created_by=user,
                )
                for item_id in fresh
            ],
            ignore_conflicts=True,
        )
        added += len(fresh)
    return added


@transaction.atomic
def review_entries_from_job(*, job: Job, user: AbstractBaseUser | None = None) -> int:
    """Queue the items of the pairs a suspect-label (or FiFA) job flagged; returns how many were new.

    Each entry keeps the job and its flagged pairs' scores (pair key, question,
    confidence, probability of the chosen response, margin, agreement), the most
    confident first. Excluded and gold items are left out.
    """
    if job.kind not in (JobKind.SUSPECTS, JobKind.FIFA):
        raise ValidationFailed("Only a suspect-label or FiFA job flags pairs.", field="job")
    if job.status != JobStatus.SUCCEEDED:
        raise ValidationFailed(f"Job {job.id} has not succeeded ({job.status}).", field="job")
    return review_entries_from_flagged(job=job, user=user)


@transaction.atomic
def review_entries_from_flagged(*, job: Job, user: AbstractBaseUser | None = None) -> int:
    """The feed behind :func:`review_entries_from_job`, without its checks (the job's own run calls it)."""
    flagged: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        PairScore.objects.filter(job=job, suspect=True, item__excluded=False, item__is_gold=False)
        .order_by("-suspect_confidence", "id")
        .values(
            "item_id",
            "pair_key",
            "question",
            "suspect_confidence",
            "prob_chosen",
            "margin",
            "agreement",
        )
        .iterator(chunk_size=2000)
    ):
        flagged[row.pop("item_id")].append(row)
    rows = {}
    for item_id, pairs in flagged.items():
        top = pairs[0]["suspect_confidence"]
        rows[item_id] = (
            f"{len(pairs)} suspect label{'s' if len(pairs) != 1 else ''} in job {job.id}"
            + (f", confidence up to {top:.2f}" if top is not None else ""),
            {"flagged_pairs": len(pairs), "pairs": pairs[:PAIRS_KEPT]},
        )
    return review_entries_add(source=ReviewSource.SUSPECTS, rows=rows, job=job, user=user)


@transaction.atomic
def review_entries_from_agreement(
    *, project: Project, threshold: Any, user: AbstractBaseUser | None = None
) -> int:
    """Queue the project's items whose agreement is under ``threshold`` (0-1]; returns how many were new.

    Items without an agreement (under two judgements), gold and excluded items are left out.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValidationFailed("threshold must be a number.", field="threshold")
    if not math.isfinite(threshold) or not 0 < threshold <= 1:
        raise ValidationFailed("threshold must be above 0 and at most 1.", field="threshold")
    rows = {
        item_id: (
            f"agreement {agreement:.2f} under {threshold:g}",
            {"agreement": agreement, "threshold": threshold},
        )
        for item_id, agreement in Item.objects.filter(
            project=project, agreement__lt=threshold, is_gold=False, excluded=False
        ).values_list("id", "agreement")
    }
    return review_entries_add(source=ReviewSource.AGREEMENT, rows=rows, user=user)


def review_entry_from_gold(*, project_id: int, payload: Mapping[str, Any]) -> ReviewEntry | None:
    """Queue the gold item of a failed gold answer, or add the failure to its open entry."""
    item_id = payload.get("item_id")
    failure = {
        "annotation_id": payload.get("annotation_id"),
        "annotator": payload.get("annotator"),
        "questions": list(payload.get("questions") or []),
    }
    with transaction.atomic():
        if not Item.objects.filter(pk=item_id, project_id=project_id).exists():
            return None
        entry = (
            ReviewEntry.objects.select_for_update()
            .filter(item_id=item_id, source=ReviewSource.GOLD, resolved_at__isnull=True)
            .first()
        )
        if entry is not None:
            failures = entry.scores.get("failures", [])
            if all(f.get("annotation_id") != failure["annotation_id"] for f in failures):
                entry.scores = {"failures": [*failures, failure][-FAILURES_KEPT:]}
                entry.reason = f"gold answer missed {len(entry.scores['failures'])} times"
                entry.save(update_fields=["scores", "reason"])
            return entry
        try:
            with transaction.atomic():
                return ReviewEntry.objects.create(
                    item_id=item_id,
                    source=ReviewSource.GOLD,
                    reason=f"gold answer missed by {failure['annotator']}"
                    + (f" ({', '.join(failure['questions'])})" if failure["questions"] else ""),
                    scores={"failures": [failure]},
                )
        except IntegrityError:
            # Another failure on the same item opened the entry first: keep that one.
            return ReviewEntry.objects.filter(
                item_id=item_id, source=ReviewSource.GOLD, resolved_at__isnull=True
            ).first()


def event_receive(event_type: str, project_id: int, payload: Mapping[str, Any], key: str) -> None:
    """Listener on ``annotation.events``: a failed gold answer puts its item in the review queue."""
    if event_type == "gold.failed":
        review_entry_from_gold(project_id=project_id, payload=payload)


# --------------------------------------------------------------------------- resolving


def _label_clean(*, item: Item, label: Any) -> list[dict[str, Any]]:
    """A label checked by the annotators' validators; stored as one entry per question."""
    questions = list(Question.objects.filter(project_id=item.project_id).order_by("position", "id"))
    responses = dict(Response.objects.filter(item=item).values_list("id", "text"))
    specs = answers_validate(
        questions=questions, responses=responses, answers=label, prefix="label", require_all=False
    )
    if not specs:
        raise ValidationFailed("Give at least one answer.", field="label")
    return [
        {"question": s.question.name, "question_id": s.question.id, "kind": s.kind, "rows": s.rows}
        for s in specs
    ]


def _more_votes_params(*, item: Item, votes: Any, priority: Any) -> dict[str, Any]:
    votes = 1 if votes is None else votes
    if isinstance(votes, bool) or not isinstance(votes, int) or not 1 <= votes <= MAX_VOTES:
        raise ValidationFailed(
            f"votes must be a whole number from 1 to {MAX_VOTES}.", field="votes"
        )
    if priority is None:
        # Served before the item's peers: one above its current priority.
        priority = item.priority + 1.0
    if (
        isinstance(priority, bool)
        or not isinstance(priority, (int, float))
        or not math.isfinite(priority)
        or abs(priority) > 1e9
    ):
        raise ValidationFailed("priority must be a finite number.", field="priority")
    return {"votes": votes, "priority": float(priority)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def review_entry_resolve(
    *,
    entry: ReviewEntry,
    user: AbstractBaseUser,
    decision: Any,
    label: Any = None,
    reason: Any = "",
    votes: Any = None,
    priority: Any = None,
) -> tuple[Adjudication, bool]:
    """Resolve ``entry`` once; returns ``(adjudication, created)``.

    ``decision``: ``accept`` (the aggregate stands), ``label`` (``label`` is a list of
    answers in the submission shape, response ids as keys, checked by the same
    validators as annotators' answers; questions left out keep their aggregate),
    ``drop`` (the item is excluded from exports and curation jobs) or ``more_votes``
    (``votes`` more annotators, ``priority`` default one above the item's). A second
    call asking the same returns the first adjudication (``created=False``); asking
    something else of a resolved entry is a ``Conflict``. Bad input is a 400 naming the field.
    """
    if decision not in Decision.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(Decision.values)}.", field="decision"
        )
    if not isinstance(reason, str) or len(reason) > 2000:
        raise ValidationFailed("reason must be text of at most 2000 characters.", field="reason")
    item = entry.item
    clean_label = None
    params: dict[str, Any] = {}
    if decision == Decision.LABEL:
        clean_label = _label_clean(item=item, label=label)
    elif label is not None:
        raise ValidationFailed("Only the decision 'label' takes a label.", field="label")
    if decision == Decision.MORE_VOTES:
        params = _more_votes_params(item=item, votes=votes, priority=priority)
    elif votes is not None or priority is not None:
        raise ValidationFailed(
            "votes and priority go with the decision 'more_votes'.", field="votes"
        )
    asked = _canonical([decision, clean_label, reason.strip(), params])
    try:
        with transaction.atomic():
            locked = ReviewEntry.objects.select_for_update().get(pk=entry.pk)
            existing = Adjudication.objects.filter(entry=locked).first()
            if existing is not None:
                return _replay(existing, asked), False
            adjudication = Adjudication.objects.create(
                entry=locked,
                item_id=locked.item_id,
                decided_by=user,
                decision=decision,
                label=clean_label,
                reason=reason.strip(),
                params=params,
            )
            locked.resolved_at = adjudication.decided_at
            locked.save(update_fields=["resolved_at"])
            if decision == Decision.DROP:
                Item.objects.filter(pk=locked.item_id).update(excluded=True)
            elif decision == Decision.MORE_VOTES:
                request_more_votes(
                    [locked.item_id], votes=params["votes"], priority=params["priority"]
                )
    except IntegrityError:
        # SQLite has no row lock: a concurrent resolution inserted first (unique entry).
        existing = Adjudication.objects.filter(entry_id=entry.pk).first()
        if existing is None:
            raise
        return _replay(existing, asked), False
    entry.resolved_at = locked.resolved_at
    return adjudication, True


def _replay(existing: Adjudication, asked: str) -> Adjudication:
    done = _canonical([existing.decision, existing.label, existing.reason, existing.params])
    if done != asked:
        raise Conflict(
            f"This entry was already resolved ({existing.decision}); open a new entry to change it.",
            field="decision",
        )
    return existing


def review_message_send(
    *, entry: ReviewEntry, sender: AbstractBaseUser, annotator: Any, body: Any
) -> AnnotatorMessage:
    """Message an annotator (by pseudonym) about the item of a resolved entry."""
    if entry.resolved_at is None:
        raise ValidationFailed("Resolve the entry before messaging its annotators.", field="entry")
    item = entry.item
    return annotator_message_send(
        project=item.project, sender=sender, item=item, annotator=annotator, body=body
    )

"""Validating and storing answers.

``answers_validate`` is shared by the submit endpoint and the importer, so an
imported label and a label typed in the browser obey exactly the same rules.
Responses are referred to by an opaque key: the response id for submissions,
the response's position for imports (whose rows do not exist yet).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from annotation.errors import Conflict, LeaseLost, NotFound, Unprocessable, ValidationFailed
from annotation.events import publish
from annotation.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    CorrectionAnswer,
    PairwiseAnswer,
    Question,
    QuestionKind,
    RankingAnswer,
    RatingAnswer,
    Response,
    Source,
)
from annotation.parsers import json_check
from annotation.pseudonyms import pseudonym
from annotation.services.assignments import (
    assignment_claim_next,
    assignment_claim_quick,
    assignment_reacquire,
    deadlock_detected,
)
from annotation.services.gold import GoldCheck, given_from_specs, gold_compare
from annotation.services.item_submission import (
    item_submission_record,
    item_submission_votes_after,
    item_submission_votes_statement,
)
from annotation.services.quality import NewAnnotation
from annotation.services.submission_rows import (
    LockedSubmission,
    annotation_insert,
    submission_lock,
)

MAX_TIME_SPENT_MS = 24 * 3600 * 1000


@dataclass
class AnswerSpec:
    """A validated answer, not yet stored. ``rows`` hold per-table field dicts."""

    question: Question
    kind: str
    rows: list[dict] = field(default_factory=list)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _question_lookup(questions: Sequence[Question]) -> dict[Any, Question]:
    lookup: dict[Any, Question] = {}
    for q in questions:
        lookup[q.id] = q
        lookup[str(q.id)] = q
        lookup[q.name] = q
    return lookup


def answers_validate(
    *,
    questions: Sequence[Question],
    responses: Mapping[Hashable, str],
    answers: Any,
    prefix: str = "answers",
    require_all: bool = True,
) -> list[AnswerSpec]:
    """Check every answer against its question and the item's responses.

    ``responses`` maps a response key to its raw text. Raises ``ValidationFailed``
    naming the field (``answers[2].ranking``) and the reason; returns specs ready
    to store. Every required question must be answered exactly once.
    """
    if not isinstance(answers, list):
        raise ValidationFailed("answers must be a list.", field=prefix)
    # Answers also arrive from the labeling page and from import lines: hold them to the
    # same limits as API bodies (NUL in a comment would otherwise fail on insert).
    json_check(answers, field=prefix)
    lookup = _question_lookup(questions)
    specs: list[AnswerSpec] = []
    seen: set[int] = set()
    for index, answer in enumerate(answers):
        path = f"{prefix}[{index}]"
        if not isinstance(answer, dict):
            raise ValidationFailed("Each answer must be an object.", field=path)
        question = lookup.get(answer.get("question"))
        if question is None:
            raise ValidationFailed(
                f"Unknown question {answer.get('question')!r}.", field=f"{path}.question"
            )
        if question.id in seen:
            raise ValidationFailed("This question is answered twice.", field=f"{path}.question")
        seen.add(question.id)
        validator = _VALIDATORS[question.kind]
        specs.append(
            AnswerSpec(
                question=question,
                kind=question.kind,
                rows=validator(question, responses, answer, path, require_all),
            )
        )
    missing = [q.name for q in questions if q.required and q.id not in seen]
    if missing and require_all:
        raise ValidationFailed(
            f"Required question(s) not answered: {', '.join(missing)}.", field=prefix
        )
    return specs


def _response_key(responses: Mapping[Hashable, str], value: Any, path: str) -> Hashable:
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        raise ValidationFailed(f"Response {value!r} does not belong to this item.", field=path)
    if value not in responses:
        # Keys may arrive as strings from forms; accept "12" for 12.
        if isinstance(value, str) and value.isdigit() and int(value) in responses:
            return int(value)
        raise ValidationFailed(f"Response {value!r} does not belong to this item.", field=path)
    return value


def _validate_pairwise(
    question: Question, responses, answer: dict, path: str, strict: bool = True
) -> list[dict]:
    config = question.config
    tie = answer.get("tie", False)
    if not isinstance(tie, bool):
        raise ValidationFailed("tie must be true or false.", field=f"{path}.tie")
    if tie and not config.get("allow_tie", True):
        raise ValidationFailed("This question does not allow ties.", field=f"{path}.tie")
    chosen = _response_key(responses, answer.get("chosen"), f"{path}.chosen")
    rejected = _response_key(responses, answer.get("rejected"), f"{path}.rejected")
    if chosen == rejected:
        raise ValidationFailed(
            "chosen and rejected must be two different responses.", field=f"{path}.rejected"
        )
    strength = answer.get("strength")
    scale = config.get("strength_scale")
    if strength is not None:
        if scale is None:
            raise ValidationFailed("This question has no strength scale.", field=f"{path}.strength")
        if (
            not isinstance(strength, int)
            or isinstance(strength, bool)
            or not scale["min"] <= strength <= scale["max"]
        ):
            raise ValidationFailed(
                f"strength must be an integer from {scale['min']} to {scale['max']}.",
                field=f"{path}.strength",
            )
        if tie:
            raise ValidationFailed("A tie has no strength.", field=f"{path}.strength")
    return [{"chosen": chosen, "rejected": rejected, "tie": tie, "strength": strength}]


def _validate_ranking(
    question: Question, responses, answer: dict, path: str, strict: bool = True
) -> list[dict]:
    ranking = answer.get("ranking")
    if not isinstance(ranking, list) or not ranking:
        raise ValidationFailed(
            "ranking must be a non-empty list, best first.", field=f"{path}.ranking"
        )
    groups: list[list] = []
    for position, entry in enumerate(ranking):
        group = entry if isinstance(entry, list) else [entry]
        if any(isinstance(member, (list, dict)) for member in group):
            raise ValidationFailed(
                "A tie group lists response ids; groups cannot nest.",
                field=f"{path}.ranking[{position}]",
            )
        if not group:
            raise ValidationFailed(
                "A tie group cannot be empty.", field=f"{path}.ranking[{position}]"
            )
        if len(group) > 1 and not question.config.get("allow_ties", True):
            raise ValidationFailed(
                "This question does not allow ties.", field=f"{path}.ranking[{position}]"
            )
        groups.append([_response_key(responses, r, f"{path}.ranking[{position}]") for r in group])
    flat = [r for group in groups for r in group]
    if len(set(flat)) != len(flat):
        raise ValidationFailed(
            "Each response may appear only once in a ranking.", field=f"{path}.ranking"
        )
    missing = set(responses) - set(flat)
    if missing:
        raise ValidationFailed(
            f"The ranking must cover every response; missing {sorted(missing, key=str)}.",
            field=f"{path}.ranking",
        )
    return [{"ranking": groups}]


def _validate_rating(
    question: Question, responses, answer: dict, path: str, strict: bool = True
) -> list[dict]:
    ratings = answer.get("ratings")
    if not isinstance(ratings, list) or not ratings:
        raise ValidationFailed(
            "ratings must be a non-empty list of {response, aspect, value}.",
            field=f"{path}.ratings",
        )
    scales = {
        a["name"]: a.get("scale") or question.config["scale"] for a in question.config["aspects"]
    }
    aspects = set(scales)
    rows: list[dict] = []
    cells: set[tuple] = set()
    for index, rating in enumerate(ratings):
        rpath = f"{path}.ratings[{index}]"
        if not isinstance(rating, dict):
            raise ValidationFailed("Each rating must be an object.", field=rpath)
        response = _response_key(responses, rating.get("response"), f"{rpath}.response")
        aspect = rating.get("aspect")
        if aspect not in aspects:
            raise ValidationFailed(
                f"Unknown aspect {aspect!r}; use {', '.join(sorted(aspects))}.",
                field=f"{rpath}.aspect",
            )
        value = rating.get("value")
        scale = scales[aspect]
        if not _is_number(value) or not scale["min"] <= value <= scale["max"]:
            raise ValidationFailed(
                f"value must be a number from {scale['min']} to {scale['max']}.",
                field=f"{rpath}.value",
            )
        if scale.get("step"):
            steps = (value - scale["min"]) / scale["step"]
            if abs(steps - round(steps)) > 1e-6:
                raise ValidationFailed(
                    f"value must be on the scale's step of {scale['step']}.", field=f"{rpath}.value"
                )
        if (response, aspect) in cells:
            raise ValidationFailed("This response and aspect are rated twice.", field=rpath)
        cells.add((response, aspect))
        rows.append({"response": response, "aspect": aspect, "value": float(value)})
    if question.required and strict:
        wanted = {(r, a) for r in responses for a in aspects}
        if cells != wanted:
            raise ValidationFailed(
                f"Rate every response on every aspect: {len(wanted - cells)} rating(s) missing.",
                field=f"{path}.ratings",
            )
    return rows


def _validate_correction(
    question: Question, responses, answer: dict, path: str, strict: bool = True
) -> list[dict]:
    corrections = answer.get("corrections", [])
    if not isinstance(corrections, list):
        raise ValidationFailed(
            "corrections must be a list (empty when nothing is wrong).", field=f"{path}.corrections"
        )
    categories = question.config.get("categories") or []
    rows: list[dict] = []
    spans: dict[Hashable, list[tuple[int, int]]] = {}
    for index, correction in enumerate(corrections):
        cpath = f"{path}.corrections[{index}]"
        if not isinstance(correction, dict):
            raise ValidationFailed("Each correction must be an object.", field=cpath)
        response = _response_key(responses, correction.get("response"), f"{cpath}.response")
        text = responses[response]
        start, end = correction.get("start"), correction.get("end")
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValidationFailed(
                    f"{name} must be an integer (Unicode code points).", field=f"{cpath}.{name}"
                )
        if not 0 <= start < end <= len(text):
            raise ValidationFailed(
                f"The span [{start}, {end}) must lie inside the response (0..{len(text)}) and be non-empty.",
                field=f"{cpath}.end" if start >= 0 else f"{cpath}.start",
            )
        original = correction.get("original_text")
        if original != text[start:end]:
            raise ValidationFailed(
                f"original_text does not match the response's text at [{start}, {end}): expected {text[start:end]!r}.",
                field=f"{cpath}.original_text",
            )
        corrected = correction.get("corrected_text", "")
        if not isinstance(corrected, str):
            raise ValidationFailed("corrected_text must be text.", field=f"{cpath}.corrected_text")
        category = correction.get("category", "") or ""
        if category and categories and category not in categories:
            raise ValidationFailed(
                f"Unknown category {category!r}; use {', '.join(categories)}.",
                field=f"{cpath}.category",
            )
        if not category and question.config.get("require_category"):
            raise ValidationFailed("A category is required.", field=f"{cpath}.category")
        comment = correction.get("comment", "") or ""
        if not isinstance(comment, str):
            raise ValidationFailed("comment must be text.", field=f"{cpath}.comment")
        for other_start, other_end in spans.get(response, []):
            if start < other_end and other_start < end:
                raise ValidationFailed("Corrections on one response must not overlap.", field=cpath)
        spans.setdefault(response, []).append((start, end))
        rows.append(
            {
                "response": response,
                "start": start,
                "end": end,
                "original_text": original,
                "corrected_text": corrected,
                "category": category,
                "comment": comment,
            }
        )
    return rows


_VALIDATORS = {
    QuestionKind.PAIRWISE: _validate_pairwise,
    QuestionKind.RANKING: _validate_ranking,
    QuestionKind.RATING: _validate_rating,
    QuestionKind.CORRECTION: _validate_correction,
}


def answer_rows_build(
    *,
    annotation_id: int | None,
    specs: Sequence[AnswerSpec],
    response_ids: Mapping[Hashable, int],
):
    """Model instances for the specs, response keys mapped to ids. Not saved (``None``:
    the annotation's id is filled in when they are, see ``submission_rows``)."""
    out: dict[type, list] = {
        PairwiseAnswer: [],
        RankingAnswer: [],
        RatingAnswer: [],
        CorrectionAnswer: [],
    }
    for spec in specs:
        qid = spec.question.id
        for row in spec.rows:
            if spec.kind == QuestionKind.PAIRWISE:
                out[PairwiseAnswer].append(
                    PairwiseAnswer(
                        annotation_id=annotation_id,
                        question_id=qid,
                        chosen_id=response_ids[row["chosen"]],
                        rejected_id=response_ids[row["rejected"]],
                        tie=row["tie"],
                        strength=row["strength"],
                    )
                )
            elif spec.kind == QuestionKind.RANKING:
                ranking = [[response_ids[r] for r in group] for group in row["ranking"]]
                out[RankingAnswer].append(
                    RankingAnswer(annotation_id=annotation_id, question_id=qid, ranking=ranking)
                )
            elif spec.kind == QuestionKind.RATING:
                out[RatingAnswer].append(
                    RatingAnswer(
                        annotation_id=annotation_id,
                        question_id=qid,
                        response_id=response_ids[row["response"]],
                        aspect=row["aspect"],
                        value=row["value"],
                    )
                )
            else:
                fields = {k: v for k, v in row.items() if k != "response"}
                out[CorrectionAnswer].append(
                    CorrectionAnswer(
                        annotation_id=annotation_id,
                        question_id=qid,
                        response_id=response_ids[row["response"]],
                        **fields,
                    )
                )
    return out


def _validate_time(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIME_SPENT_MS:
        raise ValidationFailed(
            "time_spent_ms must be an integer from 0 to 86400000.", field="time_spent_ms"
        )
    return value


def _validate_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    if len(key) > 128 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1-128 printable characters.", field="Idempotency-Key"
        )
    return key


def request_hash(*, answers: Any, time_spent_ms: int | None) -> str:
    """sha256 of a submission's canonical JSON (keys sorted), bound to its Idempotency-Key."""
    canonical = json.dumps(
        {"answers": answers, "time_spent_ms": time_spent_ms},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _same_request(previous: Annotation, digest: str) -> None:
    # Rows stored before request hashes existed have none: they replay as before.
    if previous.request_hash and previous.request_hash != digest:
        raise Unprocessable(
            "This Idempotency-Key was already used with a different body; nothing was stored. "
            "Send a new key for new answers.",
            field="Idempotency-Key",
        )


def _replay(
    *, key: str, assignment_id: int, user: AbstractBaseUser, digest: str
) -> Annotation | None:
    existing = Annotation.objects.filter(idempotency_key=key).first()
    if existing is None:
        return None
    if existing.assignment_id != assignment_id or existing.annotator_id != user.pk:
        raise Conflict(
            "This Idempotency-Key was already used for another submission.", field="Idempotency-Key"
        )
    _same_request(existing, digest)
    return existing


def annotation_created_publish(*, annotation: Annotation) -> None:
    """Announce a stored annotation (after commit; no query: ``item`` is already loaded)."""
    publish(
        "annotation.created",
        project_id=annotation.project_id,
        key=f"annotation.created:{annotation.pk}",
        payload={
            "annotation_id": annotation.pk,
            "item_id": annotation.item_id,
            "external_id": annotation.item.external_id,
            "source": annotation.source,
            "judge": annotation.judge_name,
            "time_spent_ms": annotation.time_spent_ms,
            "created_at": annotation.created_at.isoformat(),
        },
    )


def _gold_check(*, locked: LockedSubmission, specs: Sequence[AnswerSpec]) -> GoldCheck | None:
    """How a submission on a gold item compares with its expected answer (None: not gold)."""
    item = locked.assignment.item
    if not item.is_gold or item.gold_answer is None:
        return None
    lookup = {key: q for q in locked.questions for key in (q.id, q.name)}
    return gold_compare(
        gold_answer=item.gold_answer,
        questions=lookup,
        positions=locked.response_positions,
        given=given_from_specs(specs),
    )


def gold_failed_publish(*, annotation: Annotation, check: GoldCheck) -> None:
    """Announce an answer to a gold item that does not match its expected answer (after commit).

    Curation listens and puts the item in the review queue; the annotator is named by
    the project's pseudonym only.
    """
    publish(
        "gold.failed",
        project_id=annotation.project_id,
        key=f"gold.failed:{annotation.pk}",
        payload={
            "annotation_id": annotation.pk,
            "item_id": annotation.item_id,
            "annotator": pseudonym(annotation.annotator_id, str(annotation.project_id)),
            "questions": list(check.mismatched),
        },
    )


def annotation_submit(
    *,
    assignment_id: int,
    user: AbstractBaseUser,
    answers: Any,
    time_spent_ms: Any = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[Annotation, bool]:
    """Store one submission and complete its assignment, atomically.

    Returns ``(annotation, created)``. A retry with the same idempotency key and
    the same body returns the first annotation with ``created=False`` and writes
    nothing; the same key with a different body raises ``Unprocessable`` (422).
    Without a key a second submit of the assignment is a ``Conflict`` (409).
    Validation (plain code, no I/O) happens under the assignment's and item's row
    locks, right after the one statement that takes them and reads the questions and
    responses (``submission_rows.submission_lock``); a refused body rolls back and
    writes nothing. Statements on PostgreSQL: that one, the annotation with its answer
    rows, the item's votes, and the summaries' and assignment's writes together.
    """
    now = now or timezone.now()
    key, time_spent, digest = _request_checked(idempotency_key, answers, time_spent_ms)
    try:
        with transaction.atomic():
            return _submit_in_transaction(
                assignment_id=assignment_id,
                user=user,
                answers=answers,
                time_spent=time_spent,
                key=key,
                digest=digest,
                now=now,
            )
    except IntegrityError:
        return _race_settle(assignment_id=assignment_id, user=user, key=key, digest=digest)


def annotation_submit_and_claim_next(
    *,
    assignment_id: int,
    user: AbstractBaseUser,
    answers: Any,
    time_spent_ms: Any = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[Annotation, bool, Assignment | None]:
    """``annotation_submit``, then the annotator's next lease in the same project.

    Returns ``(annotation, created, next)``; ``next`` is what ``assignment_claim_next``
    returns (the live lease, a new one, or ``None`` when nothing is left), so a replayed
    submit returns the lease its first run took. On PostgreSQL both run in one
    transaction when the claim's one statement leases an item (the common case): one
    commit per item instead of two. A claim that needs more (the queue's end, a sweep of
    expired leases, a conflict) runs on its own after the submit commits, where it may
    wait for rows that others hold without holding the submitted item's locks.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        key, time_spent, digest = _request_checked(idempotency_key, answers, time_spent_ms)
        try:
            with transaction.atomic():
                annotation, created = _submit_in_transaction(
                    assignment_id=assignment_id,
                    user=user,
                    answers=answers,
                    time_spent=time_spent,
                    key=key,
                    digest=digest,
                    now=now,
                )
                following = assignment_claim_quick(
                    project=annotation.project, annotator=user, now=now
                )
        except IntegrityError:
            # A racing retry of this submit, or a lease made outside the claim lock: all
            # of it rolled back, and the separate steps below sort either out.
            pass
        except OperationalError as exc:
            # The annotator's own lock waited on their other request (another tab), whose
            # sweep of expired leases waited on this submit's item: PostgreSQL broke the
            # cycle by rolling this transaction back. The separate steps hold no lock while
            # they wait for the annotator's.
            if not deadlock_detected(exc):
                raise
        else:
            if following is None:
                following = assignment_claim_next(project=annotation.project, annotator=user)
            return annotation, created, following
    annotation, created = annotation_submit(
        assignment_id=assignment_id,
        user=user,
        answers=answers,
        time_spent_ms=time_spent_ms,
        idempotency_key=idempotency_key,
        now=now,
    )
    following = assignment_claim_next(project=annotation.project, annotator=user)
    return annotation, created, following


def _request_checked(
    idempotency_key: str | None, answers: Any, time_spent_ms: Any
) -> tuple[str | None, int | None, str]:
    key = _validate_key(idempotency_key)
    time_spent = _validate_time(time_spent_ms)
    digest = request_hash(answers=answers, time_spent_ms=time_spent) if key else ""
    return key, time_spent, digest


def _submit_in_transaction(
    *,
    assignment_id: int,
    user: AbstractBaseUser,
    answers: Any,
    time_spent: int | None,
    key: str | None,
    digest: str,
    now: datetime,
) -> tuple[Annotation, bool]:
    """The submit's reads and writes; precondition: inside the caller's transaction."""
    locked = submission_lock(assignment_id=assignment_id, user_id=user.pk)
    if locked is None:
        raise NotFound("No such assignment.")
    assignment = locked.assignment
    specs = answers_validate(
        questions=locked.questions, responses=locked.response_texts, answers=answers
    )
    gold = _gold_check(locked=locked, specs=specs)
    if assignment.status == AssignmentStatus.SUBMITTED:
        # A replay is caught here, under the lock (same key, already submitted),
        # which keeps the common path free of a look-up of the key.
        previous = Annotation.objects.filter(assignment=assignment).first()
        if key and previous is not None and previous.idempotency_key == key:
            _same_request(previous, digest)
            previous.item, previous.project = assignment.item, assignment.project
            return previous, False
        raise Conflict("This assignment was already submitted.")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("This assignment was skipped; ask for the next item.")
    if assignment.status == AssignmentStatus.EXPIRED and not assignment_reacquire(
        assignment=assignment, now=now
    ):
        raise LeaseLost(
            "Your lease on this item expired and others have taken it. Ask for the next item."
        )
    annotation = Annotation(
        project_id=assignment.project_id,
        item_id=assignment.item_id,
        assignment_id=assignment.pk,
        annotator_id=user.pk,
        source=Source.HUMAN,
        time_spent_ms=time_spent,
        idempotency_key=key,
        request_hash=digest,
        created_at=timezone.now(),
    )
    identity = {rid: rid for rid in locked.response_texts}
    answer_rows = answer_rows_build(annotation_id=None, specs=specs, response_ids=identity)
    # The item's votes are read in the statement that inserts the answers: after the
    # lock's statement, as item_submission_record's own read would be.
    read = item_submission_votes_statement(
        project=assignment.project, item=assignment.item, questions=locked.questions
    )
    rows = annotation_insert(annotation=annotation, answers=answer_rows, read=read)
    new_annotation = NewAnnotation(annotation.id, user.pk, time_spent)
    item_votes = (
        item_submission_votes_after(
            project=assignment.project,
            item=assignment.item,
            rows=rows,
            annotation=new_annotation,
            created_at=annotation.created_at,
            answers=answer_rows,
        )
        if read is not None
        else None
    )
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.finished_at = now
    # Under the item's lock, in the same transaction as the answers: the quality
    # summaries, the item's agreement and, with adaptive overlap, one more vote
    # when the votes disagree; one read of the item's votes serves all three, and
    # the assignment's own update goes out with their writes.
    item_submission_record(
        project=assignment.project,
        item=assignment.item,
        questions=locked.questions,
        annotation=new_annotation,
        item_votes=item_votes,
        then=[
            (
                f"UPDATE {Assignment._meta.db_table} "
                "SET status = %s, finished_at = %s, leased_until = %s WHERE id = %s",
                [assignment.status, now, assignment.leased_until, assignment.pk],
            )
        ],
    )
    annotation.item, annotation.project = assignment.item, assignment.project
    annotation_created_publish(annotation=annotation)
    if gold is not None and gold.matched is False:
        gold_failed_publish(annotation=annotation, check=gold)
    return annotation, True


def _race_settle(
    *, assignment_id: int, user: AbstractBaseUser, key: str | None, digest: str
) -> tuple[Annotation, bool]:
    """After a unique violation: a concurrent retry with the same key won the race."""
    if key:
        replay = _replay(key=key, assignment_id=int(assignment_id), user=user, digest=digest)
        if replay is not None:
            return replay, False
    raise Conflict("This item already has a submission from you.")


def annotation_ai_store(
    *,
    project_id: int,
    item_id: int,
    judge_name: str,
    answers: Any,
    questions: Sequence[Question] | None = None,
    responses: Mapping[int, str] | None = None,
) -> tuple[Annotation, bool]:
    """Store an LM judge's answers on one item as an AI annotation, through the human checks.

    ``answers`` has the shape of a submission (response ids as keys) and goes through
    :func:`answers_validate`; questions the judge did not answer may be missing (a judge
    abstains where it cannot tell). One annotation per (item, ``judge_name``): when it
    already exists nothing is written and ``(existing, False)`` comes back, so a re-run
    is a no-op. ``questions`` and ``responses`` may be passed in to save two queries
    per item. Call inside the caller's transaction with the judge's verdict rows.
    """
    if not judge_name:
        raise ValidationFailed("An AI annotation needs the judge's name.", field="judge_name")
    if questions is None:
        questions = list(Question.objects.filter(project_id=project_id).order_by("position", "id"))
    if responses is None:
        responses = dict(Response.objects.filter(item_id=item_id).values_list("id", "text"))
    specs = answers_validate(
        questions=questions, responses=responses, answers=answers, require_all=False
    )
    if not specs:
        raise ValidationFailed("An AI annotation needs at least one answer.", field="answers")
    key = f"ai:{hashlib.sha256(f'{project_id}|{item_id}|{judge_name}'.encode()).hexdigest()[:40]}"
    existing = Annotation.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            annotation = Annotation.objects.create(
                project_id=project_id,
                item_id=item_id,
                judge_name=judge_name,
                source=Source.AI,
                idempotency_key=key,
                request_hash=request_hash(answers=answers, time_spent_ms=None),
            )
            identity = {rid: rid for rid in responses}
            for model, rows in answer_rows_build(
                annotation_id=annotation.id, specs=specs, response_ids=identity
            ).items():
                if rows:
                    model.objects.bulk_create(rows)
            # No item-agreement refresh: that figure counts human votes only.
            annotation_created_publish(annotation=annotation)
    except IntegrityError:
        # A concurrent run of the same judge version stored it first.
        existing = Annotation.objects.filter(item_id=item_id, judge_name=judge_name).first()
        if existing is None:
            raise
        return existing, False
    return annotation, True

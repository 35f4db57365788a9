"""Writing parsed items: bulk statements in one transaction, conflicts and ``on_conflict``.

``items_import`` is the entry point: it parses the file
(:mod:`~annotation.services.imports.parser`), checks the labels against the
project's questions, matches the items against the stored ones (unchanged,
new, or a conflict) and writes the rest with a handful of bulk inserts per
batch of items.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from annotation.errors import Conflict, ValidationFailed
from annotation.events import publish
from annotation.models import (
    Annotation,
    Assignment,
    Item,
    Project,
    Question,
    QuestionKind,
    Response,
    Source,
)
from annotation.search import item_search_text, item_title
from annotation.services.agreement import item_agreement_refresh
from annotation.services.imports.formats import ParsedItem
from annotation.services.imports.parser import (
    MAX_REPORTED_ERRORS,
    Progress,
    item_fingerprint,
    items_derive_ids,
    items_merge_duplicates,
    items_parse,
)
from annotation.services.projects import question_create
from annotation.services.quality import (
    NewAnnotation,
    item_quality_record,
    quality_summaries_rebuild,
)
from annotation.services.submissions import answer_rows_build, answers_validate

ON_CONFLICT = ("error", "skip", "update")
BATCH = 2000


@dataclass
class ImportResult:
    format: str
    lines: int = 0
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    responses: int = 0
    annotations: int = 0
    questions_created: list[str] = field(default_factory=list)
    updated: int = 0
    conflicts: int = 0
    conflict_lines: list[int] = field(default_factory=list)
    skipped_invalid: int = 0
    invalid_lines: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "lines": self.lines,
            "created": self.created,
            "existing": self.existing,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "conflict_lines": self.conflict_lines,
            "skipped_invalid": self.skipped_invalid,
            "invalid_lines": self.invalid_lines,
            "responses": self.responses,
            "annotations": self.annotations,
            "questions_created": self.questions_created,
        }


# The question that a shape's labels answer, when it needs no configuration: (name, kind, prompt).
_PLAIN_QUESTIONS = {
    "trl": ("preference", QuestionKind.PAIRWISE, "Which response is better?"),
    "hh": ("preference", QuestionKind.PAIRWISE, "Which response is better?"),
    "ranked": ("ranking", QuestionKind.RANKING, "Rank the responses, best first."),
}


def _auto_questions(
    project: Project, fmt: str, items: list[ParsedItem], result: ImportResult
) -> None:
    """Create the question an imported label needs when the project lacks it."""
    names = set(Question.objects.filter(project=project).values_list("name", flat=True))
    plain = _PLAIN_QUESTIONS.get(fmt)
    if plain is not None and plain[0] not in names:
        name, kind, prompt = plain
        question_create(project=project, kind=kind, name=name, prompt=prompt)
        result.questions_created.append(name)
    if fmt == "ratings" and "rating" not in names:
        bounds: dict[str, list[float]] = {}
        declared: dict[str, Any] = {}
        for item in items:
            scale = item.metadata.pop("_scale", None)
            for label in item.labels:
                for rating in label.answers[0]["ratings"]:
                    low_high = bounds.setdefault(rating["aspect"], [math.inf, -math.inf])
                    low_high[0] = min(low_high[0], rating["value"])
                    low_high[1] = max(low_high[1], rating["value"])
            if isinstance(scale, dict):
                declared.update(scale)
        aspects = []
        for aspect, (low, high) in bounds.items():
            scale = declared.get(aspect)
            if isinstance(scale, (list, tuple)) and len(scale) == 2:
                low, high = scale
            elif isinstance(scale, dict):
                low, high = scale.get("min", low), scale.get("max", high)
            else:
                low, high = math.floor(low), math.ceil(high)
                if low == high:
                    high = low + 1
            continuous = any(
                not float(r["value"]).is_integer()
                for item in items
                for label in item.labels
                for r in label.answers[0]["ratings"]
                if r["aspect"] == aspect
            )
            aspects.append(
                {
                    "name": aspect,
                    "scale": {"min": low, "max": high, "step": None if continuous else 1},
                }
            )
        question_create(
            project=project,
            kind=QuestionKind.RATING,
            name="rating",
            prompt="Rate each response.",
            config={
                "aspects": aspects,
                "scale": aspects[0]["scale"] if aspects else {"min": 1, "max": 5},
            },
        )
        result.questions_created.append("rating")
    for item in items:
        item.metadata.pop("_scale", None)


def _annotator_users(handles: set[str]) -> dict[str, Any]:
    User = get_user_model()
    users = {}
    for handle in sorted(handles):
        username = (
            "imported"
            if not handle
            else f"imported-{slugify(handle)[:100] or hashlib.sha1(handle.encode()).hexdigest()[:12]}"
        )
        user, created = User.objects.get_or_create(username=username, defaults={"is_active": False})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        users[handle] = user
    return users


ITEM_CONTENT_FIELDS = ("conversation", "metadata", "tags", "is_gold", "gold_answer", "priority")
# Derived from the content, rewritten with it.
ITEM_SEARCH_FIELDS = ("title", "search_text")


def _item_row(project: Project, item: ParsedItem, pk: int | None = None) -> Item:
    return Item(
        pk=pk,
        project=project,
        external_id=item.external_id,
        conversation=item.conversation,
        metadata=item.metadata,
        tags=item.tags,
        is_gold=item.is_gold,
        gold_answer=item.gold_answer,
        priority=item.priority,
        content_hash=item.fingerprint,
        title=item_title(item.conversation, item.external_id),
        search_text=item_search_text(item.conversation, (r["text"] for r in item.responses)),
    )


def _legacy_changed(pairs: list[tuple[ParsedItem, int]]) -> list[tuple[ParsedItem, int]]:
    """Of items stored before fingerprints existed, those whose conversation or responses differ."""
    conversations: dict[int, Any] = {}
    texts: dict[int, list[str]] = {}
    ids = [pk for _, pk in pairs]
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        conversations.update(Item.objects.filter(pk__in=chunk).values_list("id", "conversation"))
        for item_id, text in (
            Response.objects.filter(item_id__in=chunk)
            .order_by("item_id", "position")
            .values_list("item_id", "text")
        ):
            texts.setdefault(item_id, []).append(text)
    return [
        (item, pk)
        for item, pk in pairs
        if conversations.get(pk) != item.conversation
        or texts.get(pk, []) != [r["text"] for r in item.responses]
    ]


def _match_stored(
    project: Project, items: list[ParsedItem], result: ImportResult, on_conflict: str
) -> tuple[list[ParsedItem], list[tuple[ParsedItem, int]]]:
    """Split parsed items into new ones and stored ones to update; count the rest.

    Items stored before fingerprints existed (empty ``content_hash``) are compared
    on their conversation and response texts only (their labels and other fields
    cannot be told apart from the stored rows). For ``update`` the stored items'
    responses and imported labels are deleted here, inside the caller's transaction,
    so the write loop recreates them from the file.
    """
    # A project's first import: one EXISTS instead of looking up every external_id (for
    # 10,000 lines, two statements of 5,000 bound ids: 0.07-0.3 CPU s). A concurrent first
    # import is no different from before: neither sees the other's uncommitted rows, and
    # the unique (project, external_id) constraint stops the second.
    if not Item.objects.filter(project=project).exists():
        return list(items), []
    wanted = [item.external_id for item in items] + [
        item.legacy_id for item in items if item.derived_id and item.legacy_id
    ]
    stored: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), 5000):
        for external_id, pk, content_hash in Item.objects.filter(
            project=project, external_id__in=wanted[start : start + 5000]
        ).values_list("external_id", "id", "content_hash"):
            stored[external_id] = (pk, content_hash)
    new_items: list[ParsedItem] = []
    conflicts: list[tuple[ParsedItem, int]] = []
    legacy: list[tuple[ParsedItem, int]] = []
    for item in items:
        match = stored.get(item.external_id)
        if match is None and item.derived_id:
            match = stored.get(item.legacy_id)
            if match is not None:
                item.external_id = item.legacy_id
        if match is None:
            new_items.append(item)
        elif match[1] == item.fingerprint:
            result.existing += 1
        elif match[1] == "":
            legacy.append((item, match[0]))
        else:
            conflicts.append((item, match[0]))
    changed = _legacy_changed(legacy)
    result.existing += len(legacy) - len(changed)
    conflicts.extend(changed)
    if not conflicts:
        return new_items, []
    conflicts.sort(key=lambda pair: pair[0].line)
    result.conflicts = len(conflicts)
    result.conflict_lines = [item.line for item, _ in conflicts[:MAX_REPORTED_ERRORS]]
    if on_conflict == "skip":
        return new_items, []
    if on_conflict == "error":
        errors = [
            {
                "line": item.line,
                "field": f"line {item.line}: external_id",
                "detail": f"{item.external_id!r} was imported before with different content.",
            }
            for item, _ in conflicts[:MAX_REPORTED_ERRORS]
        ]
        raise Conflict(
            f"{len(conflicts)} line(s) change items imported before (first: line {conflicts[0][0].line}); "
            "nothing was imported. Pass on_conflict=update to apply the edits or on_conflict=skip to keep "
            "the stored items.",
            field=errors[0]["field"],
            errors=errors,
        )
    ids = [pk for _, pk in conflicts]
    own_labels = f"import:{project.id}:"
    blocked = set(Assignment.objects.filter(item_id__in=ids).values_list("item_id", flat=True))
    blocked |= set(
        Annotation.objects.filter(item_id__in=ids)
        .exclude(idempotency_key__startswith=own_labels)
        .values_list("item_id", flat=True)
    )
    if blocked:
        errors = [
            {
                "line": item.line,
                "field": f"line {item.line}: external_id",
                "detail": f"{item.external_id!r} already has assignments or labels made in Ballot; "
                "updating it would discard them.",
            }
            for item, pk in conflicts
            if pk in blocked
        ][:MAX_REPORTED_ERRORS]
        raise Conflict(
            f"{len(blocked)} changed item(s) already have work done in Ballot and cannot be updated; "
            "nothing was imported.",
            field=errors[0]["field"],
            errors=errors,
        )
    Annotation.objects.filter(item_id__in=ids).delete()
    Response.objects.filter(item_id__in=ids).delete()
    return new_items, conflicts


def items_import(
    *,
    project: Project,
    lines: Iterable[bytes | str],
    fmt: str = "auto",
    progress: Progress | None = None,
    on_conflict: str = "error",
    skip_invalid: bool = False,
    derive_ids: str = "prompt",
) -> ImportResult:
    """Import a JSONL file into ``project``; all or nothing.

    Existing labels become annotations by ``imported`` annotators (one user per
    annotator handle in the file, ``imported`` when none is named). They do not
    take queue slots: the queue collects new judgements on top of them.

    A line whose item was imported before with other content (responses, labels,
    metadata…) is a conflict. ``on_conflict`` says what happens: ``error`` (the
    default) raises ``Conflict`` (409) listing the lines and writes nothing;
    ``skip`` leaves those items as stored and counts the lines; ``update``
    replaces the stored items' content and imported labels with the line's,
    refusing (409) items that already have assignments or labels made in Ballot.
    ``skip_invalid`` leaves bad lines out (counted, with their reasons) instead of
    rejecting the file. ``derive_ids`` is how id-less lines are keyed: ``prompt``
    (see ``items_derive_ids``) or ``content`` (the whole line; used by the one-item API).
    """
    if on_conflict not in ON_CONFLICT:
        raise ValidationFailed(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}.", field="on_conflict"
        )
    fmt, items, count, skipped = items_parse(
        lines, fmt=fmt, progress=progress, skip_invalid=skip_invalid
    )
    result = ImportResult(format=fmt, lines=count)
    # Within-file duplicates: one item per external_id; extra labels from new annotators merge in.
    unique, result.duplicates = items_merge_duplicates(items)
    if derive_ids == "prompt":
        items_derive_ids(unique.values())
        unique = {item.external_id: item for item in unique.values()}
    for item in unique.values():
        item.fingerprint = item_fingerprint(item)
    with transaction.atomic():
        _auto_questions(project, fmt, list(unique.values()), result)
        specs_by_item = _labels_validate(
            project=project, items=unique, skipped=skipped, skip_invalid=skip_invalid
        )
        result.skipped_invalid = len(skipped)
        result.invalid_lines = sorted(skipped, key=lambda e: e["line"])[:MAX_REPORTED_ERRORS]

        new_items, updates = _match_stored(project, list(unique.values()), result, on_conflict)
        to_write: list[tuple[ParsedItem, int | None]] = [(item, None) for item in new_items]
        to_write += updates
        users = _annotator_users(
            {
                label.annotator
                for item, _ in to_write
                for label in item.labels
                if label.source == Source.HUMAN
            }
        )
        done = 0
        for start in range(0, len(to_write), BATCH):
            batch_pairs = to_write[start : start + BATCH]
            _batch_write(project, batch_pairs, specs_by_item, users, result)
            done += len(batch_pairs)
            if progress:
                progress("write", done, len(to_write))
        if updates:
            # Updated items lost labels the summaries counted: recount the project.
            quality_summaries_rebuild(project_id=project.id)
        if to_write:
            # One summary event per import (after commit), not one per imported annotation.
            publish(
                "items.imported",
                project_id=project.id,
                key=f"items.imported:{uuid.uuid4()}",
                payload={k: v for k, v in result.as_dict().items() if not k.endswith("_lines")},
            )
    return result


def _answers_checked(
    questions: list[Question],
    responses: dict[int, str],
    answers: object,
    prefix: str,
    line: int,
    errors: list[dict],
) -> list | None:
    """A label's answer specs, or None with its error (naming the line) added to ``errors``."""
    try:
        return answers_validate(
            questions=questions,
            responses=responses,
            answers=answers,
            prefix=prefix,
            require_all=False,
        )
    except ValidationFailed as exc:
        errors.append({"line": line, "field": f"line {line}: {exc.field}", "detail": exc.detail})
        return None


def _labels_validate(
    *,
    project: Project,
    items: dict[str, ParsedItem],
    skipped: list[dict],
    skip_invalid: bool,
) -> dict[int, list]:
    """Check every label (and gold answer) against the project's questions.

    Returns each item's validated answer specs, keyed by ``id(item)``. Raises
    ``ValidationFailed`` listing the bad lines; with ``skip_invalid`` an item with a
    bad label is removed from ``items`` instead and its first error added to ``skipped``.
    """
    questions = list(Question.objects.filter(project=project).order_by("position", "id"))
    specs_by_item: dict[int, list] = {}
    errors = []
    for item in list(items.values()):
        responses = {i: r["text"] for i, r in enumerate(item.responses)}
        item_errors: list[dict] = []
        per_label = [
            _answers_checked(
                questions,
                responses,
                label.answers,
                f"annotations[{index}].answers",
                label.line,
                item_errors,
            )
            for index, label in enumerate(item.labels)
        ]
        if item.gold_answer is not None:
            _answers_checked(
                questions,
                responses,
                item.gold_answer.get("answers"),
                "gold_answer.answers",
                item.line,
                item_errors,
            )
        if item_errors and skip_invalid:
            skipped.extend(item_errors[:1])
            del items[item.external_id]
            continue
        errors.extend(item_errors)
        specs_by_item[id(item)] = per_label
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"{first['field']}: {first['detail']} (nothing was imported)",
            field=first["field"],
            errors=errors,
        )
    return specs_by_item


def _batch_write(
    project: Project,
    batch_pairs: list[tuple[ParsedItem, int | None]],
    specs_by_item: dict[int, list],
    users: dict[str, Any],
    result: ImportResult,
) -> None:
    """Insert (or, with a stored id, update) a batch of items with their responses and labels.

    One bulk statement per table: items, responses, annotations, then each answer table.
    """
    batch = [item for item, _ in batch_pairs]
    fresh_rows = Item.objects.bulk_create(
        [_item_row(project, item) for item, stored in batch_pairs if stored is None]
    )
    changed_rows = [
        _item_row(project, item, pk=stored) for item, stored in batch_pairs if stored is not None
    ]
    if changed_rows:
        Item.objects.bulk_update(
            changed_rows, [*ITEM_CONTENT_FIELDS, *ITEM_SEARCH_FIELDS, "content_hash"]
        )
    fresh_iter, changed_iter = iter(fresh_rows), iter(changed_rows)
    rows = [next(fresh_iter) if stored is None else next(changed_iter) for _, stored in batch_pairs]
    response_rows = Response.objects.bulk_create(
        [
            Response(
                item_id=row.id,
                text=r["text"],
                model_name=r["model_name"],
                position=position,
                metadata=r["metadata"],
            )
            for row, item in zip(rows, batch, strict=True)
            for position, r in enumerate(item.responses)
        ]
    )
    response_ids: dict[tuple[int, int], int] = {
        (r.item_id, r.position): r.id for r in response_rows
    }
    annotation_rows = []
    label_specs = []
    for row, item in zip(rows, batch, strict=True):
        for label, specs in zip(item.labels, specs_by_item[id(item)], strict=True):
            handle = label.annotator if label.source == Source.HUMAN else label.judge
            annotation_rows.append(
                Annotation(
                    project=project,
                    item_id=row.id,
                    annotator=users[label.annotator] if label.source == Source.HUMAN else None,
                    judge_name=label.judge if label.source == Source.AI else "",
                    source=label.source,
                    time_spent_ms=label.time_spent_ms,
                    idempotency_key=f"import:{project.id}:{hashlib.sha256(f'{item.external_id}|{label.source}|{handle}'.encode()).hexdigest()[:40]}",
                )
            )
            label_specs.append((row.id, specs))
    created_annotations = Annotation.objects.bulk_create(annotation_rows)
    answers: dict[type, list] = {}
    for annotation, (item_id, specs) in zip(created_annotations, label_specs, strict=True):
        mapping = _PositionMap(response_ids, item_id)
        for model, objs in answer_rows_build(
            annotation_id=annotation.id, specs=specs, response_ids=mapping
        ).items():
            answers.setdefault(model, []).extend(objs)
    for model, objs in answers.items():
        if objs:
            model.objects.bulk_create(objs, batch_size=5000)
    # New items: their agreement and quality summaries. Updated items lost their old
    # labels in _match_stored: their agreement is refreshed even when the file gives them
    # no pairwise answers, so no stale figure survives (the summaries are rebuilt after).
    fresh_ids = {row.id for row in fresh_rows}
    human = [
        NewAnnotation(a.id, a.annotator_id, a.time_spent_ms)
        for a in created_annotations
        if a.source == Source.HUMAN and a.item_id in fresh_ids
    ]
    human_items = {a.item_id for a in created_annotations if a.source == Source.HUMAN}
    item_quality_record(
        project_id=project.id,
        item_ids=human_items & fresh_ids,
        annotations=human,
        kinds={spec.kind for _, specs in label_specs for spec in specs},
    )
    item_agreement_refresh(item_ids=[row.id for row in changed_rows])
    result.created += len(fresh_rows)
    result.updated += len(changed_rows)
    result.responses += len(response_rows)
    result.annotations += len(created_annotations)


class _PositionMap(dict):
    """Maps a response position to its new id for one item, without building a dict per item."""

    def __init__(self, response_ids: dict[tuple[int, int], int], item_id: int):
        super().__init__()
        self._ids = response_ids
        self._item = item_id

    def __getitem__(self, position: int) -> int:
        return self._ids[(self._item, position)]

"""A submit's reads and writes in few statements (issue 16: the annotation hot path).

``annotation_submit`` (``annotation.services.submissions``) calls these: on PostgreSQL the
assignment's lock and every read a submit needs are one statement, the annotation and its
answer rows one more, and the writes after the item's vote read one more; elsewhere
(SQLite, which has no row locks or data-modifying WITH) the same steps run as plain ORM
statements. Model instances are built from the rows with ``from_db`` (no queryset, no
compiler on the hot path), carrying only the fields a submit and its response read; any
other field loads on access.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Model

from annotation.models import Annotation, Assignment, Item, Question, Response
from annotation.selectors import project_columns, project_from_row

# A statement and its parameters (``%s`` placeholders).
Statement = tuple[str, list]


@dataclass
class LockedSubmission:
    """What a submit reads under its assignment's and item's row locks."""

    assignment: Assignment  # with ``item`` and ``project`` attached
    questions: list[Question]  # the project's, by position
    response_texts: dict[int, str]  # the item's responses: id -> text
    response_positions: dict[int, int]  # position -> id (for gold answers)


_ITEM_FIELDS = ("external_id", "is_gold", "gold_answer", "overlap_extra", "agreement")
_ASSIGNMENT_FIELDS = ("status", "leased_until", "created_at", "finished_at")


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _lock_sql() -> str:
    return f"""
SELECT a.project_id, a.item_id, {", ".join(f"a.{name}" for name in _ASSIGNMENT_FIELDS)},
       {", ".join(f"i.{name}" for name in _ITEM_FIELDS)},
       {project_columns("p")},
       (SELECT coalesce(json_agg(json_build_array(
                   q.id, q.kind, q.name, q.prompt, q.position, q.required, q.config)
                   ORDER BY q.position, q.id), '[]'::json)
        FROM annotation_question q WHERE q.project_id = a.project_id),
       (SELECT coalesce(json_agg(json_build_array(r.id, r.position, r.text)
                   ORDER BY r.position, r.id), '[]'::json)
        FROM annotation_response r WHERE r.item_id = a.item_id)
FROM annotation_assignment a
JOIN annotation_item i ON i.id = a.item_id
JOIN annotation_project p ON p.id = a.project_id
WHERE a.id = %s AND a.annotator_id = %s
FOR NO KEY UPDATE OF a, i
"""


_LOCK_SQL: str | None = None


def submission_lock(*, assignment_id: int, user_id: int) -> LockedSubmission | None:
    """Lock ``user_id``'s assignment and its item, and read what a submit needs.

    Precondition: inside the submitting transaction. The assignment's row and its item's
    are locked in that order (FOR NO KEY UPDATE, as the lease sweep and skips take them);
    the item's lock is the one the vote read after the inserts relies on
    (``item_submission_record``). On PostgreSQL this is one statement: the questions and
    responses come along as JSON aggregates (they are not locked: nothing a submit races
    with changes them). ``None``: no such assignment of this user.
    """
    global _LOCK_SQL
    if connection.vendor != "postgresql":
        return _submission_lock_orm(assignment_id=assignment_id, user_id=user_id)
    if _LOCK_SQL is None:
        _LOCK_SQL = _lock_sql()
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [assignment_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    project_id, item_id = row[0], row[1]
    at = 2
    assignment_values = row[at : at + len(_ASSIGNMENT_FIELDS)]
    at += len(_ASSIGNMENT_FIELDS)
    external_id, is_gold, gold_answer, overlap_extra, agreement = row[at : at + len(_ITEM_FIELDS)]
    at += len(_ITEM_FIELDS)
    project = project_from_row(row[at:-2])
    questions_json, responses_json = row[-2], row[-1]
    alias = connection.alias
    item = Item.from_db(
        alias,
        ["id", "project_id", *_ITEM_FIELDS],
        [
            item_id,
            project_id,
            external_id,
            is_gold,
            _json(gold_answer),
            overlap_extra,
            agreement,
        ],
    )
    item.project = project
    assignment = Assignment.from_db(
        alias,
        ["id", "project_id", "item_id", "annotator_id", *_ASSIGNMENT_FIELDS],
        [assignment_id, project_id, item_id, user_id, *assignment_values],
    )
    assignment.item, assignment.project = item, project
    questions = [
        Question.from_db(
            alias,
            ["id", "project_id", "kind", "name", "prompt", "position", "required", "config"],
            [qid, project_id, kind, name, prompt, position, required, config],
        )
        for qid, kind, name, prompt, position, required, config in _json(questions_json)
    ]
    responses = _json(responses_json)
    return LockedSubmission(
        assignment=assignment,
        questions=questions,
        response_texts={rid: text for rid, _, text in responses},
        response_positions={position: rid for rid, position, _ in responses},
    )


def _submission_lock_orm(*, assignment_id: int, user_id: int) -> LockedSubmission | None:
    assignment = (
        Assignment.objects.select_for_update(of=("self", "item"), no_key=True)
        .select_related("item", "project")
        .filter(pk=assignment_id, annotator_id=user_id)
        .first()
    )
    if assignment is None:
        return None
    assignment.item.project = assignment.project
    questions = list(
        Question.objects.filter(project_id=assignment.project_id).order_by("position", "id")
    )
    responses = list(
        Response.objects.filter(item_id=assignment.item_id).values_list("id", "position", "text")
    )
    return LockedSubmission(
        assignment=assignment,
        questions=questions,
        response_texts={rid: text for rid, _, text in responses},
        response_positions={position: rid for rid, position, _ in responses},
    )


# Per model: its columns for an INSERT (all but the primary key), each with whether its
# value needs the field's own preparation for the database (a JSON document, a datetime);
# the rest are plain ints, floats, booleans and strings the driver takes as they are.
_INSERT_FIELDS: dict[type, tuple[str, list[tuple[str, object, bool]]]] = {}
_PREPARED = ("JSONField", "DateTimeField")


def _insert_fields(model: type[Model]) -> tuple[str, list[tuple[str, object, bool]]]:
    found = _INSERT_FIELDS.get(model)
    if found is None:
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        found = _INSERT_FIELDS[model] = (
            columns,
            [(f.attname, f, f.get_internal_type() in _PREPARED) for f in fields],
        )
    return found


def _insert_statement(model: type[Model], objs: Sequence[Model], *, parent: str = "") -> Statement:
    """``INSERT`` of ``objs`` (all concrete fields but the primary key); with ``parent``
    their ``annotation_id`` is the id that the WITH query ``parent`` returned."""
    columns, fields = _insert_fields(model)
    params: list = []
    rows = []
    for obj in objs:
        cells = []
        for attname, field, prepared in fields:
            if parent and attname == "annotation_id":
                cells.append(f"(SELECT id FROM {parent})")
                continue
            cells.append("%s")
            value = getattr(obj, attname)
            params.append(field.get_db_prep_save(value, connection) if prepared else value)
        rows.append("(" + ", ".join(cells) + ")")
    return (
        f"INSERT INTO {model._meta.db_table} ({columns}) VALUES {', '.join(rows)}",
        params,
    )


def annotation_insert(
    *, annotation: Annotation, answers: dict[type, list], read: Statement | None = None
) -> list[tuple]:
    """Insert ``annotation`` (unsaved, ``created_at`` set) and its answer rows (unsaved,
    by model, ``annotation_id`` unset): one statement on PostgreSQL, so no answer table
    costs a round trip of its own. Sets ``annotation``'s id. Raises ``IntegrityError`` as
    the ORM would (a used idempotency key, a second annotation of the item by its
    annotator).

    ``read`` (a SELECT) runs in the same statement and its rows come back; they do not
    include the rows inserted here (one statement, one snapshot), and elsewhere than on
    PostgreSQL it runs just before the inserts, which comes to the same.
    """
    tables = [(model, rows) for model, rows in answers.items() if rows]
    if connection.vendor != "postgresql":
        rows_read: list[tuple] = []
        if read is not None:
            with connection.cursor() as cursor:
                cursor.execute(*read)
                rows_read = cursor.fetchall()
        annotation.save(force_insert=True)
        for model, rows in tables:
            for row in rows:
                row.annotation_id = annotation.pk
            model.objects.bulk_create(rows)
        return rows_read
    sql, params = _insert_statement(Annotation, [annotation])
    parts = [f"WITH new_annotation AS ({sql} RETURNING id)"]
    for index, (model, rows) in enumerate(tables):
        answer_sql, answer_params = _insert_statement(model, rows, parent="new_annotation")
        parts.append(f", answers_{index} AS ({answer_sql})")
        params.extend(answer_params)
    if read is None:
        parts.append(" SELECT id FROM new_annotation")
    else:
        # One row at least (the id), with the read's columns NULL when it found nothing.
        parts.append(f" SELECT n.id, r.* FROM new_annotation n LEFT JOIN ({read[0]}) r ON true")
        params.extend(read[1])
    with connection.cursor() as cursor:
        cursor.execute("".join(parts), params)
        result = cursor.fetchall()
    annotation.pk = result[0][0]
    for _, rows in tables:
        for row in rows:
            row.annotation_id = annotation.pk
    annotation._state.adding = False
    annotation._state.db = connection.alias
    if read is None:
        return []
    return [row[1:] for row in result if row[1] is not None]


def statements_run(statements: Iterable[Statement]) -> None:
    """Run data-modifying ``statements`` (INSERT/UPDATE without RETURNING) in their order:
    on PostgreSQL as one statement, so several writes cost one round trip. Each must touch
    a different table: the parts of one statement share a snapshot and cannot see one
    another's rows.

    The order holds because the main query reads each part's rows in turn (WITH queries
    that nobody reads run in an order PostgreSQL does not promise), and it matters: other
    writers of the same rows (the importer's summaries) take their row locks in this
    order too, so no two of them wait on each other in a cycle.
    """
    statements = list(statements)
    if not statements:
        return
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql" or len(statements) == 1:
            for sql, params in statements:
                cursor.execute(sql, params)
            return
        parts = ", ".join(
            f"write_{index} AS ({sql} RETURNING 1)" for index, (sql, _) in enumerate(statements)
        )
        reads = ", ".join(
            f"(SELECT count(*) FROM write_{index})" for index in range(len(statements))
        )
        cursor.execute(
            f"WITH {parts} SELECT {reads}", [value for _, params in statements for value in params]
        )

"""Shaping stored annotations for the curator's read-only item page. Pure functions, no queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from annotation.models import Annotation, Question, Response
from annotation.pseudonyms import pseudonym


def response_label(position: int) -> str:
    """A, B, ... Z, then R27, R28: the names annotators saw."""
    return chr(ord("A") + position) if 0 <= position < 26 else f"R{position + 1}"


@dataclass
class CorrectedResponse:
    """A response with its corrections, for the page to render (with markdown.js) and highlight.

    ``marks`` are ``(start, end, number)`` in code points of ``text``, the unit
    the spans are stored in; the page converts them for the renderer.
    """

    label: str
    text: str
    marks: list[tuple[int, int, int]]
    corrections: list[dict] = field(default_factory=list)


def annotation_views(
    *,
    annotations: Iterable[Annotation],
    questions: Sequence[Question],
    responses: Sequence[Response],
    reveal_usernames: bool = False,
) -> list[dict]:
    """One dict per annotation with its answers in reading order, for ``item_detail.html``.

    Annotators appear by pseudonym; ``reveal_usernames`` (project admins) adds the username.
    """
    by_id = {r.id: r for r in responses}
    label = {r.id: response_label(r.position) for r in responses}
    question_order = {q.id: index for index, q in enumerate(questions)}
    question_by_id = {q.id: q for q in questions}
    out = []
    for annotation in annotations:
        blocks: list[dict] = []
        for row in annotation.pairwise_answers.all():
            blocks.append(
                {
                    "question": question_by_id.get(row.question_id),
                    "kind": "pairwise",
                    "chosen": label.get(row.chosen_id, "?"),
                    "rejected": label.get(row.rejected_id, "?"),
                    "tie": row.tie,
                    "strength": row.strength,
                }
            )
        for row in annotation.ranking_answers.all():
            groups = [" = ".join(label.get(rid, "?") for rid in group) for group in row.ranking]
            blocks.append(
                {
                    "question": question_by_id.get(row.question_id),
                    "kind": "ranking",
                    "text": "  >  ".join(groups),
                }
            )
        ratings: dict[int, dict] = {}
        for row in annotation.rating_answers.all():
            table = ratings.setdefault(row.question_id, {"aspects": [], "rows": {}})
            if row.aspect not in table["aspects"]:
                table["aspects"].append(row.aspect)
            table["rows"].setdefault(row.response_id, {})[row.aspect] = row.value
        for question_id, table in ratings.items():
            rows = [
                {
                    "label": label.get(rid, "?"),
                    "values": [_number(values.get(a)) for a in table["aspects"]],
                }
                for rid, values in sorted(
                    table["rows"].items(), key=lambda kv: label.get(kv[0], "?")
                )
            ]
            blocks.append(
                {
                    "question": question_by_id.get(question_id),
                    "kind": "rating",
                    "aspects": table["aspects"],
                    "rows": rows,
                }
            )
        corrections: dict[int, dict[int, list]] = {}
        for row in annotation.correction_answers.all():
            corrections.setdefault(row.question_id, {}).setdefault(row.response_id, []).append(row)
        for question_id, per_response in corrections.items():
            corrected = []
            number = 0
            for rid, rows in sorted(per_response.items(), key=lambda kv: label.get(kv[0], "?")):
                spans, items = [], []
                for row in sorted(rows, key=lambda r: r.start):
                    number += 1
                    spans.append((row.start, row.end, number))
                    items.append({"number": number, "row": row})
                text = by_id[rid].text if rid in by_id else ""
                corrected.append(
                    CorrectedResponse(
                        label=label.get(rid, "?"),
                        text=text,
                        marks=spans,
                        corrections=items,
                    )
                )
            blocks.append(
                {
                    "question": question_by_id.get(question_id),
                    "kind": "correction",
                    "responses": corrected,
                }
            )
        blocks.sort(
            key=lambda b: question_order.get(b["question"].id if b["question"] else -1, 999)
        )
        out.append(
            {
                "annotation": annotation,
                "who": pseudonym(annotation.annotator_id, str(annotation.project_id))
                if annotation.annotator_id
                else f"AI: {annotation.judge_name}",
                "username": annotation.annotator.username
                if reveal_usernames and annotation.annotator_id
                else None,
                "blocks": blocks,
            }
        )
    return out


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"

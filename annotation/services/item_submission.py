"""What one human submission does to its item once its answers are in.

Three things follow a submit: the quality summaries (``annotation.services.quality``), the
item's agreement (``annotation.agreement_item``) and the adaptive-overlap rule
(``annotation.services.overlap``). Each needs the item's human votes as they stand with
the new answer, read under the item's row lock so that two people submitting on one item
at once never each miss the other's vote. They share one lock (the caller's) and one read
(``ItemVotes``), and their changes to the item row go out in one UPDATE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from annotation.models import Item, Project, Question
from annotation.quality_summary import PAIRWISE
from annotation.services.overlap import item_overlap_wanted
from annotation.services.quality import (
    ItemVotes,
    NewAnnotation,
    item_summaries_add,
    item_votes_after,
    item_votes_read,
    item_votes_statement,
    votes_agreement,
)
from annotation.services.submission_rows import Statement, statements_run


def _adaptive(project: Project, item: Item) -> bool:
    return project.adaptive_overlap and not item.is_gold


def item_submission_votes_statement(
    *, project: Project, item: Item, questions: Sequence[Question]
) -> Statement | None:
    """The read of the item's votes that ``item_submission_record`` needs, as ``(sql,
    params)``, for a caller that folds it into the statement inserting the annotation (see
    ``quality.item_votes_statement`` and ``quality.item_votes_after``; ``None``: nothing
    to read). Same preconditions as the read ``item_submission_record`` makes itself."""
    return item_votes_statement(
        item_id=item.pk,
        kinds={question.kind for question in questions},
        count_annotations=_adaptive(project, item),
    )


def item_submission_votes_after(
    *,
    project: Project,
    item: Item,
    rows: Sequence[tuple],
    annotation: NewAnnotation,
    created_at: datetime,
    answers: Mapping[type, Sequence],
) -> ItemVotes:
    """``ItemVotes`` for ``item_submission_record`` from the rows that
    ``item_submission_votes_statement`` read alongside the insert of ``annotation`` and
    its ``answers`` (rows by model), which those rows do not hold."""
    return item_votes_after(
        item_id=item.pk,
        rows=rows,
        annotation=annotation,
        created_at=created_at,
        answers=answers,
        count_annotations=_adaptive(project, item),
    )


def item_submission_record(
    *,
    project: Project,
    item: Item,
    questions: Sequence[Question],
    annotation: NewAnnotation,
    item_votes: ItemVotes | None = None,
    then: Sequence[Statement] = (),
) -> None:
    """Update the quality summaries, agreement and wanted overlap of ``item`` after a submit.

    Preconditions: inside the submitting transaction, after ``annotation``'s answers are
    stored, and with ``item``'s row locked (FOR NO KEY UPDATE) in an earlier statement of
    that transaction; ``item`` holds the values read under that lock (``is_gold``,
    ``gold_answer``, ``overlap_extra``; ``slots_taken`` may have moved since, and is read
    by the UPDATE itself). Under READ COMMITTED the read here then sees every vote of a
    writer that held the lock before, so the last of several simultaneous submits judges
    every vote and the summaries' differences start from what the earlier ones stored.

    Statements: one read of the item's votes (every answer table, plus its human
    annotations when the project's overlap is adaptive) unless the caller passes
    ``item_votes`` it read in the statement that inserted the answers (after the lock, as
    this read would be; ``item_submission_votes_statement``), then the writes in one more
    (``submission_rows.statements_run``): one upsert per summary table with rows, at most
    one UPDATE of the item (its agreement when a pairwise answer changed it, its
    ``overlap_extra`` and ``is_full`` when disagreement asks one more vote), and the
    caller's own writes ``then`` (each on a table of its own), last.
    """
    adaptive = _adaptive(project, item)
    if item_votes is None:
        item_votes = item_votes_read(
            item_id=item.pk,
            kinds={question.kind for question in questions},
            count_annotations=adaptive,
        )
    statements: list[Statement] = []
    item_summaries_add(
        project_id=project.pk,
        gold_items={item.pk: item.gold_answer} if item.is_gold else {},
        votes=item_votes.votes,
        annotations=[annotation],
        statements=statements,
    )
    sets: list[str] = []
    params: list = []
    if any(v.kind == PAIRWISE and v.annotation_id == annotation.id for v in item_votes.votes):
        agreement = votes_agreement([item.pk], item_votes.votes)[item.pk]
        # The row's figure was read under the lock: an equal one needs no write.
        if agreement != item.agreement:
            sets.append("agreement = %s")
            params.append(agreement)
    wanted = (
        item_overlap_wanted(
            project=project,
            questions=questions,
            overlap_extra=item.overlap_extra,
            item_votes=item_votes,
        )
        if adaptive
        else None
    )
    if wanted is not None:
        # is_full from the row's own slots_taken: a reacquired lease took a slot since the lock.
        sets += ["overlap_extra = %s", "is_full = (slots_taken >= %s)"]
        params += [wanted - project.base_overlap, wanted]
    if sets:
        statements.append(
            (
                f"UPDATE {Item._meta.db_table} SET {', '.join(sets)} WHERE id = %s",
                [*params, item.pk],
            )
        )
    statements_run([*statements, *then])

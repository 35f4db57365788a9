"""Keeping the quality summaries in step with the human answers (see ``annotation.quality_summary``).

Writers of human answers call ``item_quality_record`` inside their transaction after
the answers are written; ``quality_summaries_rebuild`` recomputes a project's summaries
from its answers (the ``quality_rebuild`` command, the migration that introduced them,
and writers that delete answers).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.apps import apps as global_apps
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from annotation import quality_summary as qs
from annotation.agreement_item import TIE, item_agreement

CHUNK = 2000
# Rows per INSERT: well under SQLite's limit on bound parameters.
UPSERT_ROWS = 500


@dataclass(frozen=True)
class NewAnnotation:
    """What the annotator table needs of a human annotation just written."""

    id: int
    annotator_id: int
    time_spent_ms: int | None


class _Tables:
    """The models the summaries read and write: the current ones, or a migration's."""

    def __init__(self, apps: Any = global_apps) -> None:
        get = apps.get_model
        self.Item = get("annotation", "Item")
        self.Response = get("annotation", "Response")
        self.Question = get("annotation", "Question")
        self.Annotation = get("annotation", "Annotation")
        self.PairwiseAnswer = get("annotation", "PairwiseAnswer")
        self.RatingAnswer = get("annotation", "RatingAnswer")
        self.RankingAnswer = get("annotation", "RankingAnswer")
        self.QualityAgreementSum = get("annotation", "QualityAgreementSum")
        self.AnnotatorPairVote = get("annotation", "AnnotatorPairVote")
        self.AnnotatorQuality = get("annotation", "AnnotatorQuality")
        self.AnnotatorTime = get("annotation", "AnnotatorTime")


@cache
def _tables() -> _Tables:
    """The current models' ``_Tables`` (looked up once, not on every submit)."""
    return _Tables()


# --------------------------------------------------------------------------- reading votes


def _as_datetime(value: Any) -> datetime:
    # A raw cursor on SQLite returns the stored text, naive UTC.
    if isinstance(value, str):
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _votes_sql(tables: _Tables, kinds: Iterable[str], where: str, annotations: bool) -> str:
    annotation = tables.Annotation._meta.db_table
    common = "a.id, a.annotator_id, a.created_at, x.question_id, a.item_id"
    branches = {
        qs.PAIRWISE: f"SELECT 'pairwise', {common}, x.chosen_id, x.rejected_id, '', "
        f"CASE WHEN x.tie THEN 1.0 ELSE 0.0 END, NULL "
        f"FROM {tables.PairwiseAnswer._meta.db_table} x",
        qs.RATING: f"SELECT 'rating', {common}, x.response_id, 0, x.aspect, x.value, NULL "
        f"FROM {tables.RatingAnswer._meta.db_table} x",
        qs.RANKING: f"SELECT 'ranking', {common}, 0, 0, '', NULL, CAST(x.ranking AS TEXT) "
        f"FROM {tables.RankingAnswer._meta.db_table} x",
    }
    selects = [
        f"{branches[kind]} JOIN {annotation} a ON a.id = x.annotation_id "
        f"WHERE a.source = 'human' AND {where}"
        for kind in (qs.PAIRWISE, qs.RATING, qs.RANKING)
        if kind in kinds
    ]
    if annotations:
        # One row per human annotation, answers or not (a correction-only one counts too).
        selects.append(
            f"SELECT '{_ANNOTATION}', a.id, a.annotator_id, a.created_at, 0, a.item_id, 0, 0, '', "
            f"NULL, NULL FROM {annotation} a WHERE a.source = 'human' AND {where}"
        )
    return " UNION ALL ".join(selects)


# The row kind of the annotation branch (not a vote).
_ANNOTATION = "annotation"


def _read(
    tables: _Tables, kinds: Iterable[str], where: str, params: list, *, annotations: bool = False
) -> tuple[list[qs.Vote], Counter]:
    """The human votes of the answers ``where`` selects (on ``a``, the annotation), and
    with ``annotations`` the number of human annotations per item (else empty). One
    statement."""
    kinds = [k for k in kinds if k in (qs.PAIRWISE, qs.RATING, qs.RANKING)]
    if not kinds and not annotations:
        return [], Counter()
    with connection.cursor() as cursor:
        cursor.execute(
            _votes_sql(tables, kinds, where, annotations), params * (len(kinds) + annotations)
        )
        return _parse(cursor.fetchall())


def _parse(rows: Iterable[Sequence]) -> tuple[list[qs.Vote], Counter]:
    """Votes and annotations per item from the rows of ``_votes_sql``."""
    votes: list[qs.Vote] = []
    per_item: Counter = Counter()
    for (
        kind,
        aid,
        who,
        created,
        question,
        item,
        first,
        second,
        aspect,
        number,
        ranking,
    ) in rows:
        if kind == _ANNOTATION:
            per_item[item] += 1
            continue
        common = {
            "annotation_id": aid,
            "annotator_id": who,
            "created_at": _as_datetime(created),
            "question_id": question,
            "item_id": item,
        }
        if kind == qs.PAIRWISE:
            votes.append(
                qs.pairwise_vote(chosen_id=first, rejected_id=second, tie=bool(number), **common)
            )
        elif kind == qs.RATING:
            votes.append(qs.rating_vote(response_id=first, aspect=aspect, value=number, **common))
        else:
            vote = qs.ranking_vote(ranking=json.loads(ranking), **common)
            if vote is not None:
                votes.append(vote)
    return votes, per_item


def _votes(tables: _Tables, kinds: Iterable[str], where: str, params: list) -> list[qs.Vote]:
    """The human votes of the answers ``where`` selects (on ``a``, the annotation)."""
    return _read(tables, kinds, where, params)[0]


@dataclass(frozen=True)
class ItemVotes:
    """One item's human votes and annotations, read once for everything a submit updates."""

    item_id: int
    votes: list[qs.Vote]
    # Human annotations on the item, answered or not (only when asked for, else 0).
    human_annotations: int


def item_votes_read(*, item_id: int, kinds: Iterable[str], count_annotations: bool) -> ItemVotes:
    """Read ``item_id``'s human votes (and, with ``count_annotations``, its number of human
    annotations) in one statement.

    Precondition: the caller holds the item's row lock, taken in an earlier statement of
    its transaction: under READ COMMITTED this read then sees every vote committed by a
    writer that held the lock before.
    """
    votes, per_item = _read(
        _tables(), kinds, "a.item_id = %s", [item_id], annotations=count_annotations
    )
    return ItemVotes(item_id=item_id, votes=votes, human_annotations=per_item[item_id])


def item_votes_statement(
    *, item_id: int, kinds: Iterable[str], count_annotations: bool
) -> tuple[str, list] | None:
    """The read of ``item_votes_read`` as ``(sql, params)``, for a caller that runs it as
    part of a statement of its own (``None``: nothing to read). The same precondition
    holds for that statement; ``item_votes_after`` turns its rows into ``ItemVotes``."""
    kinds = [k for k in kinds if k in (qs.PAIRWISE, qs.RATING, qs.RANKING)]
    if not kinds and not count_annotations:
        return None
    sql = _votes_sql(_tables(), kinds, "a.item_id = %s", count_annotations)
    return sql, [item_id] * (len(kinds) + count_annotations)


def item_votes_after(
    *,
    item_id: int,
    rows: Iterable[Sequence],
    annotation: NewAnnotation,
    created_at: datetime,
    answers: Mapping[type, Sequence[Any]],
    count_annotations: bool,
) -> ItemVotes:
    """The item's votes with ``annotation``'s: ``rows`` of ``item_votes_statement`` read
    without it (in the statement that inserted it, whose snapshot does not hold its own
    rows), plus the votes of its ``answers`` (answer rows by model, as inserted)."""
    votes, per_item = _parse(rows)
    tables = _tables()
    common = {
        "annotation_id": annotation.id,
        "annotator_id": annotation.annotator_id,
        "created_at": created_at,
        "item_id": item_id,
    }
    for row in answers.get(tables.PairwiseAnswer, ()):
        votes.append(
            qs.pairwise_vote(
                chosen_id=row.chosen_id,
                rejected_id=row.rejected_id,
                tie=row.tie,
                question_id=row.question_id,
                **common,
            )
        )
    for row in answers.get(tables.RatingAnswer, ()):
        votes.append(
            qs.rating_vote(
                response_id=row.response_id,
                aspect=row.aspect,
                value=float(row.value),
                question_id=row.question_id,
                **common,
            )
        )
    for row in answers.get(tables.RankingAnswer, ()):
        vote = qs.ranking_vote(ranking=row.ranking, question_id=row.question_id, **common)
        if vote is not None:
            votes.append(vote)
    return ItemVotes(
        item_id=item_id,
        votes=votes,
        human_annotations=per_item[item_id] + 1 if count_annotations else 0,
    )


# --------------------------------------------------------------------------- writing


def _upsert_statements(
    model: type, keys: Sequence[str], columns: Sequence[str], rows: list[tuple], *, add: bool
) -> list[tuple[str, list]]:
    """One INSERT ... ON CONFLICT per ``UPSERT_ROWS`` rows: ``add`` adds the new figures to
    the stored ones (counters other writers also move), else they replace them."""
    if not rows:
        return []
    table = model._meta.db_table
    names = [*keys, *columns]
    if add:
        updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in columns)
    else:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    # Sorted, so writers touching overlapping rows lock them in one order (no deadlock).
    rows = sorted(rows, key=lambda row: tuple(row[: len(keys)]))
    placeholder = "(" + ", ".join(["%s"] * len(names)) + ")"
    statements = []
    for start in range(0, len(rows), UPSERT_ROWS):
        chunk = rows[start : start + UPSERT_ROWS]
        statements.append(
            (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                + ", ".join([placeholder] * len(chunk))
                + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
                [value for row in chunk for value in row],
            )
        )
    return statements


def _upsert(
    model: type,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: list[tuple],
    *,
    add: bool,
    into: list | None = None,
) -> None:
    """Run ``_upsert_statements``, or with ``into`` append them there for the caller to run."""
    statements = _upsert_statements(model, keys, columns, rows, add=add)
    if into is not None:
        into.extend(statements)
        return
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


# Stripes of the agreement sums: concurrent submits on different items mostly add to
# different rows of today's sums instead of queueing on one.
QUALITY_SHARDS = 8
SUM_KEYS = ("question_id", "day", "unit_votes", "value", "shard")
SUM_COLUMNS = ("votes", "votes_sq", "value_sum", "value_sum_sq", "observed")
PAIR_KEYS = ("question_id", "annotator_a_id", "annotator_b_id", "value_a", "value_b")
ANNOTATOR_KEYS = ("project_id", "annotator_id")
ANNOTATOR_COLUMNS = (
    "judgements",
    "majority_agreed",
    "majority_units",
    "gold_correct",
    "gold_scored",
)
TIME_KEYS = ("project_id", "annotator_id", "bucket_ms")


def _sum_tuples(sums: dict[tuple, list[float]], shard: int) -> list[tuple]:
    return [
        (question, day, size, value, shard, *figures)
        for (question, day, size, value), figures in sums.items()
    ]


def _gold_truths(tables: _Tables, project_id: int, gold: dict[int, Any]) -> dict:
    """``(question, low, high) -> label`` over the gold items given as ``id -> gold_answer``."""
    if not gold:
        return {}
    questions: dict[Any, int] = {}
    for qid, name in tables.Question.objects.filter(
        project_id=project_id, kind=qs.PAIRWISE
    ).values_list("id", "name"):
        questions[qid] = questions[name] = qid
    positions: dict[int, dict[int, int]] = defaultdict(dict)
    for item_id, position, rid in tables.Response.objects.filter(
        item_id__in=list(gold)
    ).values_list("item_id", "position", "id"):
        positions[item_id][position] = rid
    truth: dict = {}
    for item_id, answer in gold.items():
        truth[item_id] = qs.gold_truth(answer, questions=questions, positions=positions[item_id])
    return truth


def _annotator_rows(
    project_id: int,
    judgements: Counter,
    outcomes: dict[int, list[int]],
    gold: dict[int, list[int]],
) -> list[tuple]:
    rows = []
    for who in set(judgements) | set(outcomes) | set(gold):
        agreed, counted = outcomes.get(who, (0, 0))
        correct, scored = gold.get(who, (0, 0))
        figures = (judgements.get(who, 0), agreed, counted, correct, scored)
        if any(figures):
            rows.append((project_id, who, *figures))
    return rows


def _subtract(after: dict[int, list[int]], before: dict[int, list[int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for who in set(after) | set(before):
        a, b = after.get(who, [0, 0]), before.get(who, [0, 0])
        out[who] = [a[0] - b[0], a[1] - b[1]]
    return out


@transaction.atomic(savepoint=False)
def item_quality_record(
    *,
    project_id: int,
    item_ids: Iterable[int],
    annotations: Sequence[NewAnnotation],
    kinds: Iterable[str],
) -> None:
    """Add human ``annotations`` (already written, on ``item_ids``) to the quality summaries.

    For writers of many items at once (imports); a submit goes through
    ``annotation.services.item_submission`` instead, which shares its one read with the
    adaptive-overlap rule. Also stores the items' ``agreement`` when a pairwise answer
    came. ``kinds`` are the question kinds the project asks (branches for others are
    left out of the read).

    Locks the items first (in id order), then reads all their human votes: a second
    writer on the same item waits for the first to commit and then reads both votes, so
    the difference it computes (the items' figures with its annotations minus without
    them) starts from what the first one stored. Statements: the lock, one read of every
    answer table, the agreement update (of the figures that moved), then the upserts of
    ``item_summaries_add``.
    """
    tables = _Tables()
    ids = sorted(set(item_ids))
    new_ids = {a.id for a in annotations}
    if not ids:
        return
    items = list(
        tables.Item.objects.select_for_update(no_key=True)
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "is_gold", "gold_answer", "agreement")
    )
    placeholders = ", ".join(["%s"] * len(ids))
    votes = _votes(tables, set(kinds), f"a.item_id IN ({placeholders})", ids)
    if any(v.kind == qs.PAIRWISE and v.annotation_id in new_ids for v in votes):
        # Only figures that moved (read under the lock above): an imported item with one
        # vote stays at NULL, and rewriting every row of a batch (an indexed column, a
        # 2,000-branch CASE) was a third of a labelled import's time.
        stored = {pk: agreement for pk, _, _, agreement in items}
        _agreement_store(
            tables,
            {
                pk: figure
                for pk, figure in votes_agreement(ids, votes).items()
                if figure != stored.get(pk)
            },
        )
    item_summaries_add(
        project_id=project_id,
        gold_items={pk: answer for pk, is_gold, answer, _ in items if is_gold},
        votes=votes,
        annotations=annotations,
    )


def item_summaries_add(
    *,
    project_id: int,
    gold_items: Mapping[int, Any],
    votes: Sequence[qs.Vote],
    annotations: Sequence[NewAnnotation],
    statements: list | None = None,
) -> None:
    """Add the difference ``annotations`` make to the quality summaries of their items.

    ``votes`` are all the human votes of those items, new ones included, read under the
    items' row locks (see ``item_quality_record``); ``gold_items`` maps the gold ones
    among them to their gold answer. Every summary gets the difference added in the
    database (``x = x + EXCLUDED.x``), so writers on different items moving the same rows
    (today's agreement sums, one annotator's counters) are all counted. One upsert per
    summary table that has rows (on a gold item, two reads of its questions and
    responses for the gold answer). With ``statements`` the upserts are appended there,
    in this order, instead of run (``submission_rows.statements_run`` runs them).
    """
    tables = _tables()
    new_ids = {a.id for a in annotations}
    fresh = [v for v in votes if v.annotation_id in new_ids]
    touched = {v.unit for v in fresh if v.item_id not in gold_items}
    after = [v for v in votes if v.unit in touched]
    before = [v for v in after if v.annotation_id not in new_ids]
    by_shard: dict[int, list[qs.Vote]] = defaultdict(list)
    for vote in after:
        by_shard[vote.item_id % QUALITY_SHARDS].append(vote)
    _upsert(
        tables.QualityAgreementSum,
        SUM_KEYS,
        SUM_COLUMNS,
        [
            row
            for shard, shard_votes in by_shard.items()
            for row in _sum_tuples(
                qs.sums_difference(
                    qs.unit_sums(shard_votes),
                    qs.unit_sums(v for v in shard_votes if v.annotation_id not in new_ids),
                ),
                shard,
            )
        ],
        add=True,
        into=statements,
    )
    pairs = qs.pair_counts(after)
    pairs.subtract(qs.pair_counts(before))
    _upsert(
        tables.AnnotatorPairVote,
        PAIR_KEYS,
        ("units",),
        [(*key, n) for key, n in pairs.items() if n],
        add=True,
        into=statements,
    )
    outcomes = _subtract(qs.annotator_outcomes(after), qs.annotator_outcomes(before))
    truths = _gold_truths(tables, project_id, gold_items)
    gold: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for item_id, truth in truths.items():
        for who, (correct, scored) in qs.gold_scores(
            [v for v in fresh if v.item_id == item_id], truth
        ).items():
            gold[who][0] += correct
            gold[who][1] += scored
    judgements = Counter(a.annotator_id for a in annotations)
    _upsert(
        tables.AnnotatorQuality,
        ANNOTATOR_KEYS,
        ANNOTATOR_COLUMNS,
        _annotator_rows(project_id, judgements, outcomes, gold),
        add=True,
        into=statements,
    )
    times = Counter(
        (project_id, a.annotator_id, qs.time_bucket(a.time_spent_ms))
        for a in annotations
        if a.time_spent_ms is not None
    )
    _upsert(
        tables.AnnotatorTime,
        TIME_KEYS,
        ("annotations",),
        [(*key, n) for key, n in times.items()],
        add=True,
        into=statements,
    )


def votes_agreement(item_ids: Iterable[int], votes: Iterable[qs.Vote]) -> dict[int, float | None]:
    """``Item.agreement`` of each of ``item_ids`` from its human pairwise votes
    (``annotation.agreement_item``); ``None`` for items without two of them."""
    per_item: dict[int, list] = {pk: [] for pk in item_ids}
    for vote in votes:
        if vote.kind == qs.PAIRWISE:
            per_item[vote.item_id].append((vote.question_id, pairwise_vote_choice(vote)))
    return {pk: item_agreement(item_votes) for pk, item_votes in per_item.items()}


def pairwise_vote_choice(vote: qs.Vote) -> int | None:
    """The answer of a pairwise vote as ``annotation.agreement_item.pairwise_choice`` gives
    it: the chosen response, or ``TIE``."""
    if vote.value == "tie":
        return TIE
    return vote.unit_a if vote.value == "lo" else vote.unit_b


def _agreement_store(tables: _Tables, figures: dict[int, float | None]) -> None:
    if not figures:
        return
    if len(figures) == 1:
        ((pk, figure),) = figures.items()
        tables.Item.objects.filter(pk=pk).update(agreement=figure)
    else:
        tables.Item.objects.bulk_update(
            [tables.Item(pk=pk, agreement=figure) for pk, figure in figures.items()],
            ["agreement"],
            batch_size=CHUNK,
        )


# --------------------------------------------------------------------------- rebuilding


def quality_summaries_rebuild(*, project_id: int, apps: Any = global_apps) -> dict[str, int]:
    """Recompute one project's quality summaries from its answers, replacing the stored ones.

    In one transaction: delete, then read the human votes in chunks of items and write
    the same figures ``item_quality_record`` keeps (from the same functions). Run it
    while nobody labels the project (a submission committed during the rebuild may be
    counted twice in the annotator counters); re-running it always repairs. ``apps``
    is a migration's app registry when a migration calls it. Returns row counts.
    """
    tables = _Tables(apps)
    with transaction.atomic():
        questions = list(
            tables.Question.objects.filter(project_id=project_id).values_list("id", "kind")
        )
        question_ids = [qid for qid, _ in questions]
        kinds = {kind for _, kind in questions}
        tables.QualityAgreementSum.objects.filter(question_id__in=question_ids).delete()
        tables.AnnotatorPairVote.objects.filter(question_id__in=question_ids).delete()
        tables.AnnotatorQuality.objects.filter(project_id=project_id).delete()
        tables.AnnotatorTime.objects.filter(project_id=project_id).delete()
        pairs: Counter = Counter()
        outcomes: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        gold: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        sums: dict[tuple, list[float]] = {}
        last = 0
        while True:
            chunk = list(
                tables.Item.objects.filter(project_id=project_id, pk__gt=last)
                .order_by("pk")
                .values_list("pk", "is_gold", "gold_answer")[:CHUNK]
            )
            if not chunk:
                break
            last = chunk[-1][0]
            votes = _votes(
                tables,
                kinds,
                "a.project_id = %s AND a.item_id BETWEEN %s AND %s",
                [project_id, chunk[0][0], last],
            )
            gold_items = {pk: answer for pk, is_gold, answer in chunk if is_gold}
            plain = [v for v in votes if v.item_id not in gold_items]
            for key, figures in qs.unit_sums(plain).items():
                entry = sums.setdefault(key, [0, 0, 0.0, 0.0, 0.0])
                for index, figure in enumerate(figures):
                    entry[index] += figure
            pairs.update(qs.pair_counts(plain))
            for who, (agreed, counted) in qs.annotator_outcomes(plain).items():
                outcomes[who][0] += agreed
                outcomes[who][1] += counted
            for item_id, truth in _gold_truths(tables, project_id, gold_items).items():
                for who, (correct, scored) in qs.gold_scores(
                    [v for v in votes if v.item_id == item_id], truth
                ).items():
                    gold[who][0] += correct
                    gold[who][1] += scored
        _upsert(tables.QualityAgreementSum, SUM_KEYS, SUM_COLUMNS, _sum_tuples(sums, 0), add=True)
        _upsert(
            tables.AnnotatorPairVote,
            PAIR_KEYS,
            ("units",),
            [(*key, n) for key, n in pairs.items()],
            add=True,
        )
        judgements: Counter = Counter()
        times: Counter = Counter()
        for who, spent in (
            tables.Annotation.objects.filter(project_id=project_id, source="human")
            .values_list("annotator_id", "time_spent_ms")
            .iterator(chunk_size=20_000)
        ):
            judgements[who] += 1
            if spent is not None:
                times[(project_id, who, qs.time_bucket(spent))] += 1
        annotators = _annotator_rows(project_id, judgements, outcomes, gold)
        _upsert(tables.AnnotatorQuality, ANNOTATOR_KEYS, ANNOTATOR_COLUMNS, annotators, add=True)
        _upsert(
            tables.AnnotatorTime,
            TIME_KEYS,
            ("annotations",),
            [(*key, n) for key, n in times.items()],
            add=True,
        )
    return {"agreement_sums": len(sums), "pairs": len(pairs), "annotators": len(annotators)}

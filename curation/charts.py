"""Chart data for the quality page: plain dicts, aggregated in the database.

Each selector takes a project and returns a plain dict, the same JSON the
chart-data API serves and the page draws. None of them loads a project's
annotations into Python.

Agreement and the annotator table read the summaries the answer writers keep
in the submit transaction (``annotation.services.quality``): Krippendorff's alpha
and Fleiss' kappa are sums over per-unit vote rows, Cohen's kappa comes from
per-pair label counts, the annotator table from per-annotator counters, so they
are fresh and fast right after new labels.

The other charts (label distributions, coverage, throughput, profiles) are grouped
scans of the answers, cached per project under a stamp of the project's data (the
newest annotation time and item id); when the stamp moves, the previous result is
served while a background thread recomputes (see ``_cached``).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.db.models import CharField, Count, Max, Min, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate

from annotation.models import (
    Annotation,
    AnnotatorPairVote,
    AnnotatorProfile,
    AnnotatorQuality,
    AnnotatorTime,
    Item,
    PairwiseAnswer,
    Project,
    QualityAgreementSum,
    Question,
    QuestionKind,
    RankingAnswer,
    RatingAnswer,
    Response,
    Source,
)
from annotation.pseudonyms import pseudonym
from annotation.quality_summary import COHEN_KINDS, bucket_median
from annotation.services.projects import CATEGORICAL_PROFILE_FIELDS
from curation.reliability import latest_reliability_by_annotator

PERIODS = ("day", "week")
# Profile fields with one value per annotator; lists (languages, expertise) and free
# text are left out of the breakdown.
BREAKDOWN_FIELDS = CATEGORICAL_PROFILE_FIELDS
HIDDEN = "other/hidden"
UNANSWERED = "unanswered"
# A cached result is kept this long (a stale one is refreshed on the next read anyway).
CACHE_SECONDS = 24 * 3600
REFRESH_LOCK_SECONDS = 600


def kappa_min_shared_units() -> int:
    """Fewest units two annotators must share for their Cohen's kappa to count."""
    return int(getattr(settings, "BALLOT_KAPPA_MIN_SHARED_UNITS", 5))


def profile_min_group() -> int:
    """Smallest group of annotators a profile breakdown shows by its value."""
    return int(getattr(settings, "BALLOT_PROFILE_MIN_GROUP", 5))


def _round(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), 4)


# --------------------------------------------------------------------------- caching


def _stamp(project: Project) -> str:
    """What the charts depend on, read from two index-only lookups.

    The newest annotation time (index on project, created_at) moves with every
    submission and the newest item id (index on project, id) with every import;
    counting rows would scan 500,000 annotations on every page load.
    """
    latest = Annotation.objects.filter(project=project).aggregate(last=Max("created_at"))["last"]
    newest_item = Item.objects.filter(project=project).aggregate(last=Max("id"))["last"]
    return f"{latest}:{newest_item}:{project.base_overlap}:{project.quality_threshold}"


@contextmanager
def _analytics_session() -> Iterator[None]:
    """Settings for the few large aggregates of one computation (PostgreSQL only).

    Enough sort memory keeps the grouping of a few hundred thousand rows off disk;
    JIT compilation costs more than it saves on queries that run once.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        yield


def _compute(compute: Callable[[], dict]) -> dict:
    with _analytics_session():
        return compute()


def _refresh(key: str, stamp: str, compute: Callable[[], dict]) -> None:
    try:
        cache.set(key, {"stamp": stamp, "value": _compute(compute)}, CACHE_SECONDS)
    finally:
        cache.delete(f"{key}:refreshing")
        close_old_connections()


def _cached(name: str, project: Project, compute: Callable[[], dict], *extra: Any) -> dict:
    """``compute()``, cached per project until the data's stamp changes.

    When the stamp has moved and background work is allowed (the
    ``BALLOT_JOBS_IN_THREAD`` switch), the previous result is served while one
    thread recomputes it, so a busy project's page never waits for the large
    aggregates; without background work (tests) it recomputes at once.
    """
    # created_at tells apart two projects that reuse an id (a rolled-back test database).
    key = f"ballot:charts:{name}:{project.id}:{project.created_at.timestamp()}:" + ":".join(
        map(str, extra)
    )
    stamp = _stamp(project)
    entry = cache.get(key)
    if entry is not None and entry["stamp"] == stamp:
        return entry["value"]
    if entry is not None and getattr(settings, "BALLOT_JOBS_IN_THREAD", False):
        if cache.add(f"{key}:refreshing", 1, REFRESH_LOCK_SECONDS):
            threading.Thread(
                target=_refresh, args=(key, stamp, compute), name=f"charts-{name}", daemon=True
            ).start()
        return entry["value"]
    value = _compute(compute)
    cache.set(key, {"stamp": stamp, "value": value}, CACHE_SECONDS)
    return value


# --------------------------------------------------------------------------- SQL helpers


def _sql(queryset: QuerySet) -> tuple[str, tuple]:
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)


def _as_date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def _fetch(sql: str, params: tuple) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _gold_ids(project_id: int) -> QuerySet:
    return Item.objects.filter(project_id=project_id, is_gold=True).values("id")


def _unit_sums(questions: list[Question], period: str) -> dict[int, list[tuple]]:
    """Per question: (period, m, value, votes, votes², Σ values, Σ values², observed) rows.

    Read from the sums the writers keep per day of the units' last vote
    (``QualityAgreementSum``, summed over its stripes), then added up per day or ISO
    week (UTC). Grouping by (period, m) is enough for alpha and Fleiss' kappa, because
    every unit in a group has m votes.
    """
    ids = [q.id for q in questions]
    if not ids:
        return {}
    table = QualityAgreementSum._meta.db_table
    rows = _fetch(
        "SELECT question_id, day, unit_votes, value, SUM(votes), SUM(votes_sq), "
        "SUM(value_sum), SUM(value_sum_sq), SUM(observed) "
        f"FROM {table} WHERE question_id IN ({', '.join(['%s'] * len(ids))}) "
        "GROUP BY question_id, day, unit_votes, value",
        tuple(ids),
    )
    grouped: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for question_id, day, m, value, *figures in rows:
        if not figures[0]:
            continue  # every unit counted here has moved on (a later vote)
        start = date.fromisoformat(_as_date(day))
        if period == "week":
            start -= timedelta(days=start.weekday())
        entry = grouped[(question_id, start, int(m), value)]
        for index, figure in enumerate(figures):
            entry[index] += figure
    by_question: dict[int, list[tuple]] = defaultdict(list)
    for (question_id, start, m, value), figures in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        by_question[question_id].append((start.isoformat(), m, value, *figures))
    return by_question


def _interval_rows(rows: list[tuple]) -> list[tuple]:
    """(period, units, n, Σ v, Σ v², observed) per period, from ``_unit_sums`` rows."""
    per_period: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for period, m, _value, votes, _squares, s1, s2, observed in rows:
        entry = per_period[_as_date(period)]
        entry[0] += float(votes) / int(m)
        entry[1] += float(votes)
        entry[2] += float(s1)
        entry[3] += float(s2)
        entry[4] += float(observed)
    return [(key, round(v[0]), *v[1:]) for key, v in sorted(per_period.items())]


def _cohen(questions: list[Question]) -> dict[int, dict]:
    """Per question: the mean Cohen's kappa over annotator pairs sharing enough units.

    From the per-pair label counts (``AnnotatorPairVote``), grouped in the database
    to one row per pair: shared units N, units with equal labels, and the sum over
    labels of the two annotators' marginal counts, Σ r·s; then kappa = (p_o - p_e) /
    (1 - p_e) with p_o = agree / N and p_e = Σ r·s / N². Pairs whose chance agreement
    is already 1 (both used one label only) have no kappa and are left out.
    """
    ids = [q.id for q in questions]
    if not ids:
        return {}
    minimum = kappa_min_shared_units()
    table = AnnotatorPairVote._meta.db_table
    rows = _fetch(
        f"""
        WITH t AS (
            SELECT question_id AS q, annotator_a_id AS a, annotator_b_id AS b,
                   value_a, value_b, units AS n
            FROM {table} WHERE question_id IN ({", ".join(["%s"] * len(ids))})
        ),
        pairs AS (
            SELECT q, a, b, SUM(n) AS total, SUM(CASE WHEN value_a = value_b THEN n ELSE 0 END)
                AS agree
            FROM t GROUP BY q, a, b HAVING SUM(n) >= %s
        ),
        ma AS (SELECT q, a, b, value_a AS c, SUM(n) AS r FROM t GROUP BY q, a, b, value_a),
        mb AS (SELECT q, a, b, value_b AS c, SUM(n) AS s FROM t GROUP BY q, a, b, value_b),
        chance AS (
            SELECT ma.q, ma.a, ma.b, SUM(ma.r * mb.s) AS e
            FROM ma JOIN mb ON ma.q = mb.q AND ma.a = mb.a AND ma.b = mb.b AND ma.c = mb.c
            GROUP BY ma.q, ma.a, ma.b
        )
        SELECT pairs.q, pairs.total, pairs.agree, COALESCE(chance.e, 0)
        FROM pairs LEFT JOIN chance
            ON chance.q = pairs.q AND chance.a = pairs.a AND chance.b = pairs.b
        """,
        (*ids, minimum),
    )
    kappas: dict[int, list[float]] = defaultdict(list)
    for question_id, total, agree, expected in rows:
        total, agree, expected = int(total), int(agree), int(expected)
        if expected >= total * total:
            continue
        p_o, p_e = agree / total, expected / (total * total)
        kappas[question_id].append((p_o - p_e) / (1 - p_e))
    return {
        question_id: {
            "kappa": _round(sum(values) / len(values)),
            "pairs": len(values),
            "min_shared_units": minimum,
        }
        for question_id, values in kappas.items()
    }


def _nominal_alpha(n: float, disagreement: float, value_totals: dict[Any, float]) -> float | None:
    expected = n * n - sum(t * t for t in value_totals.values())
    if n < 2 or expected <= 0:
        return None
    return _round(1.0 - (n - 1) * disagreement / expected)


def _interval_alpha(n: float, s1: float, s2: float, observed: float) -> float | None:
    expected = n * s2 - s1 * s1
    if n < 2 or expected <= 1e-12:
        return None
    return _round(1.0 - (n - 1) * observed / expected)


def _fleiss(groups: dict[int, dict]) -> dict | None:
    """Fleiss' kappa over the units with the most common number of raters (as the quality report)."""
    if not groups:
        return None
    raters = max(groups, key=lambda m: (groups[m]["units"], m))
    group = groups[raters]
    if group["units"] < 2:
        return None
    units = group["units"]
    p_bar = (group["sq"] - units * raters) / (units * raters * (raters - 1))
    total = units * raters
    p_e = sum((t / total) ** 2 for t in group["values"].values())
    kappa = None if p_e >= 1 else _round((p_bar - p_e) / (1 - p_e))
    return {"kappa": kappa, "raters_per_unit": raters, "units": units}


def _nominal_agreement(rows: list[tuple]) -> tuple[dict, list[dict], dict[int, dict]]:
    per_period: dict[str, dict] = defaultdict(
        lambda: {"units": 0.0, "n": 0.0, "disagreement": 0.0, "values": defaultdict(float)}
    )
    by_raters: dict[int, dict] = defaultdict(
        lambda: {"units": 0, "sq": 0.0, "values": defaultdict(float)}
    )
    units_by_period_raters: dict[tuple[str, int], float] = defaultdict(float)
    sq_by_period_raters: dict[tuple[str, int], float] = defaultdict(float)
    for period, m, value, total, squares in rows:
        key = _as_date(period)
        m = int(m)
        units_by_period_raters[(key, m)] += float(total)
        sq_by_period_raters[(key, m)] += float(squares)
        per_period[key]["values"][value] += float(total)
        by_raters[m]["values"][value] += float(total)
    for (key, m), total in units_by_period_raters.items():
        units = total / m
        squares = sq_by_period_raters[(key, m)]
        entry = per_period[key]
        entry["units"] += units
        entry["n"] += total
        # sum over units of (m² - Σ n_c²) / (m - 1), all units here share m
        entry["disagreement"] += (units * m * m - squares) / (m - 1)
        by_raters[m]["units"] += round(units)
        by_raters[m]["sq"] += squares
    series = []
    cumulative = {"units": 0.0, "n": 0.0, "disagreement": 0.0, "values": defaultdict(float)}
    for key in sorted(per_period):
        entry = per_period[key]
        for field in ("units", "n", "disagreement"):
            cumulative[field] += entry[field]
        for value, total in entry["values"].items():
            cumulative["values"][value] += total
        series.append(
            {
                "period": key,
                "units": round(entry["units"]),
                "alpha": _nominal_alpha(entry["n"], entry["disagreement"], entry["values"]),
                "alpha_cumulative": _nominal_alpha(
                    cumulative["n"], cumulative["disagreement"], cumulative["values"]
                ),
            }
        )
    overall = {
        "units": round(cumulative["units"]),
        "krippendorff_alpha": _nominal_alpha(
            cumulative["n"], cumulative["disagreement"], cumulative["values"]
        ),
    }
    return overall, series, by_raters


def _interval_agreement(rows: list[tuple]) -> tuple[dict, list[dict]]:
    series = []
    total = [0.0, 0.0, 0.0, 0.0, 0.0]  # units, n, s1, s2, observed
    for period, units, n, s1, s2, observed in rows:
        values = [float(units), float(n), float(s1), float(s2), float(observed)]
        total = [a + b for a, b in zip(total, values, strict=True)]
        series.append(
            {
                "period": _as_date(period),
                "units": int(units),
                "alpha": _interval_alpha(*values[1:]),
                "alpha_cumulative": _interval_alpha(*total[1:]),
            }
        )
    return {"units": int(total[0]), "krippendorff_alpha": _interval_alpha(*total[1:])}, series


def _auto_period(project: Project) -> str:
    # All sources: the (project, created_at) index answers this without a scan.
    span = Annotation.objects.filter(project=project).aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    if span["first"] is None or (span["last"] - span["first"]).days <= 31:
        return "day"
    return "week"


# --------------------------------------------------------------------------- selectors


def agreement_over_time(*, project: Project, period: str | None = None) -> dict:
    """Agreement per question, overall and per period of the units' last annotation.

    Per question: Krippendorff's alpha (nominal for pairwise choices and the
    top-ranked response, interval for ratings), Fleiss' kappa over the units with
    the most common number of raters (ratings rounded to whole points), the mean
    Cohen's kappa over annotator pairs sharing enough units (pairwise and rating
    questions), and a series with each period's alpha (units completed in that
    period) and the cumulative alpha up to its end. Human annotations of non-gold
    items only, read from the summaries kept on write, so a new label shows at once.
    """
    chosen = period or _auto_period(project)
    questions = list(Question.objects.filter(project=project).order_by("position", "id"))
    scored = [q for q in questions if q.kind != QuestionKind.CORRECTION]
    sums = _unit_sums(scored, chosen)
    cohen = _cohen([q for q in scored if q.kind in COHEN_KINDS])
    out = []
    for question in questions:
        entry: dict[str, Any] = {"question": question.name, "kind": question.kind}
        if question.kind == QuestionKind.CORRECTION:
            entry.update(
                level=None,
                units=0,
                krippendorff_alpha=None,
                fleiss_kappa=None,
                cohen_kappa=None,
                series=[],
                note="agreement is not computed for free-form corrections",
            )
            out.append(entry)
            continue
        rows = sums.get(question.id, [])
        nominal = [
            (period, m, value, votes, squares) for period, m, value, votes, squares, *_ in rows
        ]
        if question.kind == QuestionKind.RATING:
            _, _, by_raters = _nominal_agreement(nominal)
            overall, series = _interval_agreement(_interval_rows(rows))
            entry["level"] = "interval"
        else:
            overall, series, by_raters = _nominal_agreement(nominal)
            entry["level"] = "nominal"
        entry.update(overall)
        entry["fleiss_kappa"] = _fleiss(by_raters)
        entry["cohen_kappa"] = cohen.get(question.id)
        entry["series"] = series
        entry["note"] = (
            "ranking agreement on the response ranked first; no Cohen's kappa (a different "
            "label set on every item)"
            if question.kind == QuestionKind.RANKING
            else ""
        )
        out.append(entry)
    return {"project": project.id, "period": chosen, "questions": out}


def label_distributions(*, project: Project) -> dict:
    """How labels are spread: pairwise choice (A/B/tie), strength and the chosen
    response's position, ratings per aspect and value, the top-ranked position."""
    return _cached("labels", project, lambda: _labels(project=project))


def _letter(position: int | None) -> str:
    if position is None:
        return "?"
    return chr(ord("A") + position) if position < 26 else str(position + 1)


def _pairwise_label_counts(*, project: Project, question: Question) -> list[tuple]:
    """``(by_ai, tie, chosen position, strength, answers)`` per combination, one grouped scan.

    An answer's source comes from a join with only the project's AI annotations (few,
    through their partial index; the join's condition, not its WHERE, so human answers
    stay in as NULL): joining every answer with its annotation was the larger half of
    this chart's work. A join rather than ``IN (subquery)``: a project with millions of
    judge labels would push the subquery past the memory PostgreSQL hashes it in, and
    the unhashed plan rescans it for every answer.
    """
    sql = (
        f"SELECT a.id IS NOT NULL, p.tie, r.position, p.strength, COUNT(*) "
        f"FROM {PairwiseAnswer._meta.db_table} p "
        f"JOIN {Response._meta.db_table} r ON r.id = p.chosen_id "
        f"LEFT JOIN {Annotation._meta.db_table} a "
        f"ON a.id = p.annotation_id AND a.source = %s AND a.project_id = %s "
        f"WHERE p.question_id = %s GROUP BY 1, 2, 3, 4"
    )
    return _fetch(sql, (Source.AI.value, project.id, question.id))


def _labels(*, project: Project) -> dict:
    questions = []
    for question in Question.objects.filter(project=project).order_by("position", "id"):
        entry: dict[str, Any] = {"question": question.name, "kind": question.kind}
        if question.kind == QuestionKind.PAIRWISE:
            rows = _pairwise_label_counts(project=project, question=question)
            choice: dict[tuple[str, str], int] = defaultdict(int)
            strength: dict[str, int] = defaultdict(int)
            position: dict[str, int] = defaultdict(int)
            for by_ai, tie, chosen_position, given_strength, n in rows:
                source = Source.AI if by_ai else Source.HUMAN
                label = "tie" if tie else _letter(chosen_position)
                choice[(source, label)] += n
                if given_strength is not None:
                    strength[str(given_strength)] += n
                if not tie:
                    position[_letter(chosen_position)] += n
            labels = sorted({label for _, label in choice}, key=lambda x: (x == "tie", x))
            entry["choice"] = [
                {
                    "label": label,
                    "human": choice[(Source.HUMAN, label)],
                    "ai": choice[(Source.AI, label)],
                }
                for label in labels
            ]
            entry["strength"] = [{"value": k, "count": strength[k]} for k in sorted(strength)]
            entry["chosen_position"] = [
                {"value": k, "count": position[k]} for k in sorted(position)
            ]
        elif question.kind == QuestionKind.RATING:
            rows = (
                RatingAnswer.objects.filter(question=question)
                .values("aspect", "value")
                .annotate(n=Count("id"))
                .order_by("aspect", "value")
            )
            aspects: dict[str, list[dict]] = defaultdict(list)
            for row in rows:
                aspects[row["aspect"]].append({"value": row["value"], "count": row["n"]})
            entry["aspects"] = [{"aspect": a, "values": v} for a, v in aspects.items()]
        elif question.kind == QuestionKind.RANKING:
            # The first response id of the first group, mapped to its position through the
            # (small) list of a project's response positions would need a join per row;
            # a count per top response id and one lookup of those ids is enough.
            rows = (
                RankingAnswer.objects.filter(question=question)
                .annotate(top=Cast(KT("ranking__0__0"), CharField()))
                .values("top")
                .annotate(n=Count("id"))
                .order_by()
            )
            counts = {row["top"]: row["n"] for row in rows if row["top"] is not None}
            ids = [int(k) for k in counts if str(k).lstrip("-").isdigit()]
            positions: dict[str, int] = defaultdict(int)
            for chunk_start in range(0, len(ids), 5000):
                for rid, pos in Response.objects.filter(
                    id__in=ids[chunk_start : chunk_start + 5000]
                ).values_list("id", "position"):
                    positions[_letter(pos)] += counts[str(rid)]
            entry["top_position"] = [{"value": k, "count": positions[k]} for k in sorted(positions)]
        questions.append(entry)
    return {"project": project.id, "questions": questions}


def coverage(*, project: Project) -> dict:
    """Non-gold items by their number of human annotations, against the project's overlap."""
    return _cached("coverage", project, lambda: _coverage(project=project))


def _coverage(*, project: Project) -> dict:
    per_item = (
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .exclude(item_id__in=_gold_ids(project.id))
        .values("item_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    inner, params = _sql(per_item)
    rows = _fetch(f"SELECT n, COUNT(*) FROM ({inner}) per_item GROUP BY n ORDER BY n", params)
    items = Item.objects.filter(project=project, is_gold=False).count()
    histogram = {int(n): int(count) for n, count in rows}
    histogram[0] = items - sum(histogram.values())
    # Adaptive overlap: complete means the minimum every item starts with.
    overlap = project.base_overlap
    return {
        "project": project.id,
        "overlap": overlap,
        "items": items,
        "complete": sum(c for n, c in histogram.items() if n >= overlap),
        "partial": sum(c for n, c in histogram.items() if 0 < n < overlap),
        "unlabelled": histogram[0],
        "histogram": [{"annotations": n, "items": histogram[n]} for n in sorted(histogram)],
    }


def throughput(*, project: Project) -> dict:
    """Annotations per day (UTC), human and AI."""
    return _cached("throughput", project, lambda: _throughput(project=project))


def _throughput(*, project: Project) -> dict:
    rows = (
        Annotation.objects.filter(project=project)
        .annotate(day=TruncDate("created_at"))
        .values("day", "source")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    days: list[str] = []
    counts: dict[str, dict[str, int]] = {Source.HUMAN: {}, Source.AI: {}}
    for row in rows:
        day = _as_date(row["day"])
        if not days or days[-1] != day:
            days.append(day)
        counts.setdefault(row["source"], {})[day] = row["n"]
    return {
        "project": project.id,
        "days": days,
        "human": [counts[Source.HUMAN].get(d, 0) for d in days],
        "ai": [counts[Source.AI].get(d, 0) for d in days],
    }


# --------------------------------------------------------------------------- annotators


def annotator_table(*, project: Project, show_usernames: bool = False) -> dict:
    """One row per human annotator: pseudonym (and username for admins), judgements,
    agreement with the majority of the others (pairwise and ranking questions pooled),
    gold accuracy, median time per item, and the flags of the quality report (below
    the project's threshold), and each annotator's reliability in the latest reliability
    job when there is one.

    Read from the counters kept on write (``AnnotatorQuality``, ``AnnotatorTime``):
    two small queries whatever the project's size. The median time is of the times
    bucketed as ``annotation.quality_summary.time_bucket`` keeps them (to a tenth of a
    second under 10 s, to the second under 10 minutes, to the minute beyond).
    """
    counters = list(
        AnnotatorQuality.objects.filter(project=project, judgements__gt=0).values_list(
            "annotator_id",
            "judgements",
            "majority_agreed",
            "majority_units",
            "gold_correct",
            "gold_scored",
        )
    )
    buckets: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for who, bucket, count in AnnotatorTime.objects.filter(project=project).values_list(
        "annotator_id", "bucket_ms", "annotations"
    ):
        buckets[who].append((bucket, count))
    usernames: dict[int, str] = {}
    if show_usernames:
        from django.contrib.auth import get_user_model

        usernames = dict(
            get_user_model()
            .objects.filter(id__in=[row[0] for row in counters])
            .values_list("id", "username")
        )
    threshold = project.quality_threshold
    salt = str(project.id)
    rows = []
    for who, judgements, agreed, counted, correct, scored in counters:
        agreement_value = agreed / counted if counted else None
        gold_value = correct / scored if scored else None
        median_ms = bucket_median(buckets.get(who, []))
        reasons = []
        if counted >= 5 and agreement_value is not None and agreement_value < threshold:
            reasons.append(f"agreement {agreement_value:.2f} below {threshold}")
        if scored >= 3 and gold_value is not None and gold_value < threshold:
            reasons.append(f"gold accuracy {gold_value:.2f} below {threshold}")
        row = {
            "annotator": pseudonym(who, salt),
            "judgements": judgements,
            "agreement_with_majority": _round(agreement_value),
            "agreement_units": counted,
            "gold_accuracy": _round(gold_value),
            "gold_items": scored,
            "median_seconds": None if median_ms is None else _round(median_ms / 1000),
            "flagged": bool(reasons),
            "reasons": reasons,
        }
        if show_usernames:
            row["username"] = usernames.get(who, "")
        rows.append(row)
    rows.sort(key=lambda r: (-r["judgements"], r["annotator"]))
    job_id, by_annotator = latest_reliability_by_annotator(project=project)
    by_pseudonym = {pseudonym(who, salt): value for who, value in by_annotator.items()}
    for row in rows:
        row["reliability"] = by_pseudonym.get(row["annotator"])
    return {
        "project": project.id,
        "quality_threshold": threshold,
        "reliability_job": job_id,
        "annotators": rows,
    }


# --------------------------------------------------------------------------- profiles


def profile_breakdown(*, project: Project) -> dict:
    """Who labelled, in aggregate: per profile field, annotators and judgements per value.

    Values held by fewer annotators than ``BALLOT_PROFILE_MIN_GROUP`` (default 5)
    are pooled as "other/hidden", so no small group can be singled out; a missing
    profile or answer is shown as "unanswered".
    """
    return _cached("profiles", project, lambda: _profiles(project=project), profile_min_group())


def _profiles(*, project: Project) -> dict:
    counts = dict(
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .values_list("annotator_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("annotator_id", "n")
    )
    profiles = {
        row["user_id"]: row
        for row in AnnotatorProfile.objects.filter(user_id__in=list(counts)).values(
            "user_id", *BREAKDOWN_FIELDS
        )
    }
    minimum = profile_min_group()
    fields = []
    for field in BREAKDOWN_FIELDS:
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for who, judgements in counts.items():
            value = (profiles.get(who) or {}).get(field)
            label = UNANSWERED if value in (None, "") else str(value)
            groups[label][0] += 1
            groups[label][1] += judgements
        shown: dict[str, list[int]] = {}
        hidden = [0, 0]
        for label, (people, judgements) in groups.items():
            if label != UNANSWERED and people < minimum:
                hidden[0] += people
                hidden[1] += judgements
            else:
                shown[label] = [people, judgements]
        values = [
            {"value": label, "annotators": people, "judgements": judgements}
            for label, (people, judgements) in sorted(shown.items(), key=lambda kv: -kv[1][0])
        ]
        if hidden[0]:
            values.append({"value": HIDDEN, "annotators": hidden[0], "judgements": hidden[1]})
        fields.append({"field": field, "values": values})
    return {
        "project": project.id,
        "annotators": len(counts),
        "min_group_size": minimum,
        "fields": fields,
    }


# --------------------------------------------------------------------------- datasets page


def dataset_version_list(*, project: Project, limit: int = 50) -> list:
    """The project's newest dataset versions, newest first, for the datasets page."""
    from curation.models import DatasetVersion

    return list(DatasetVersion.objects.filter(project=project).order_by("-version")[:limit])


def export_jobs_active(*, project: Project) -> list:
    """Export jobs of the project still queued or running, oldest first."""
    from curation.models import Job, JobKind, JobStatus

    return list(
        Job.objects.filter(
            project=project,
            kind=JobKind.EXPORT,
            status__in=(JobStatus.QUEUED, JobStatus.RUNNING),
        ).order_by("id")
    )


def fifa_jobs_succeeded(*, project: Project) -> list[tuple[int, str]]:
    """(id, label) of the project's succeeded FiFA and suspect-label jobs, newest first."""
    from curation.models import Job, JobKind, JobStatus

    rows = Job.objects.filter(
        project=project, kind__in=(JobKind.FIFA, JobKind.SUSPECTS), status=JobStatus.SUCCEEDED
    ).order_by("-id")[:50]
    return [
        (job.id, f"#{job.id} {job.kind} ({(job.finished_at or job.created_at):%Y-%m-%d %H:%M})")
        for job in rows
    ]

"""Chart data for the quality page: plain dicts, aggregated in the database.

Each selector takes a project and returns a plain dict, the same JSON the
chart-data API serves and the page draws. None of them loads a project's
annotations into Python: agreement is computed from per-unit sums that SQL
groups (Krippendorff's alpha and Fleiss' kappa need only, per unit, the number
of values and the sum of squared value counts, or the sums of values and
squares for the interval metric), so the cost is a few grouped scans however
many annotations a project holds.

Results are cached per project under a stamp of the project's data (the
newest annotation time and item id), so repeated page loads do not repeat the
scans; when the stamp moves, the previous result is served while a background
thread recomputes (see ``_cached``).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.db.models import Case, CharField, Count, F, Max, Min, QuerySet, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Greatest, Least, Round, TruncDate

from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Item,
    PairwiseAnswer,
    Project,
    Question,
    QuestionKind,
    RankingAnswer,
    RatingAnswer,
    Source,
)
from annotation.pseudonyms import pseudonym
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
    return f"{latest}:{newest_item}:{project.overlap}:{project.quality_threshold}"


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


def _period_sql(column: str, period: str) -> str:
    """The SQL that truncates a timestamp column to the start of its day or ISO week (UTC)."""
    if connection.vendor == "postgresql":
        return f"date_trunc('{period}', {column} AT TIME ZONE 'UTC')::date"
    if period == "week":
        return f"date({column}, '-6 days', 'weekday 1')"
    return f"date({column})"


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


def _human_answers(model: type, question: Question) -> QuerySet:
    # Gold items are served to everyone and are scored against their answer, not
    # against each other: like the quality report, agreement leaves them out.
    # Gold ids as a (small, hashed) subquery rather than a join to every item.
    return model.objects.filter(question=question, annotation__source=Source.HUMAN).exclude(
        annotation__item_id__in=_gold_ids(question.project_id)
    )


def _gold_ids(project_id: int) -> QuerySet:
    return Item.objects.filter(project_id=project_id, is_gold=True).values("id")


def _unit_values(question: Question, *, nominal: bool) -> QuerySet | None:
    """Rows (u1, u2, u3, v, n, last): how many annotators gave value v to unit (u1, u2, u3).

    Units match the quality report's: pairwise (item, lower response, higher
    response) with the choice as lo/hi/tie; ratings (item, response, aspect); for
    rankings the response ranked first per item (nominal).
    """
    item = F("annotation__item_id")
    if question.kind == QuestionKind.PAIRWISE:
        rows = _human_answers(PairwiseAnswer, question).values(
            u1=item,
            u2=Least("chosen_id", "rejected_id"),
            u3=Greatest("chosen_id", "rejected_id"),
            v=Case(
                When(tie=True, then=Value("tie")),
                When(chosen_id__lt=F("rejected_id"), then=Value("lo")),
                default=Value("hi"),
                output_field=CharField(),
            ),
        )
    elif question.kind == QuestionKind.RATING:
        rows = _human_answers(RatingAnswer, question).values(
            u1=item,
            u2=F("response_id"),
            u3=F("aspect"),
            v=Round("value") if nominal else F("value"),
        )
    elif question.kind == QuestionKind.RANKING:
        rows = _human_answers(RankingAnswer, question).values(
            u1=item, u2=Value(0), u3=Value(""), v=Cast(KT("ranking__0__0"), CharField())
        )
    else:
        return None
    return rows.annotate(n=Count("id"), last=Max("annotation__created_at")).order_by()


# Per unit: m values, sum of squared value counts, last annotation time; pairable units only.
_UNITS = (
    "SELECT u1, u2, u3, SUM(n) AS m, SUM(n * n) AS sq, MAX(last) AS last "
    "FROM ({values}) uv GROUP BY u1, u2, u3 HAVING SUM(n) >= 2"
)


def _nominal_sums(question: Question, period: str) -> list[tuple]:
    """(period, m, value, sum of counts, sum of squared counts) over pairable units.

    A unit belongs to the period of its last annotation: the period in which it
    became what it is now. Grouping by (period, m) is enough for alpha and for
    Fleiss' kappa, because every unit in a group has the same m.
    """
    values = _unit_values(question, nominal=True)
    if values is None:
        return []
    inner, params = _sql(values)
    sql = (
        f"WITH uv AS ({inner}), units AS ({_UNITS.format(values='SELECT * FROM uv')}) "
        f"SELECT {_period_sql('units.last', period)} AS period, units.m, uv.v, "
        "SUM(uv.n), SUM(uv.n * uv.n) "
        "FROM uv JOIN units ON uv.u1 = units.u1 AND uv.u2 = units.u2 AND uv.u3 = units.u3 "
        "GROUP BY 1, 2, 3 ORDER BY 1"
    )
    return _fetch(sql, params)


def _rating_sums(question: Question, period: str) -> tuple[list[tuple], list[tuple]]:
    """One scan of a rating question's answers for both metrics.

    Values are grouped per unit by their whole point (the nominal view Fleiss'
    kappa uses) while carrying the exact sums of values and squares that the
    interval alpha needs; the two result sets share the grouped rows through
    one statement. Returns the ``_nominal_sums`` rows and, for the interval
    metric, (period, units, n, sum v, sum v², observed disagreement).
    """
    values = (
        _human_answers(RatingAnswer, question)
        .values(u1=F("annotation__item_id"), u2=F("response_id"), u3=F("aspect"), v=Round("value"))
        .annotate(
            n=Count("id"),
            sv=Sum("value"),
            sv2=Sum(F("value") * F("value")),
            last=Max("annotation__created_at"),
        )
        .order_by()
    )
    inner, params = _sql(values)
    sql = (
        f"WITH uv AS ({inner}), units AS (SELECT u1, u2, u3, SUM(n) AS m, SUM(sv) AS s1, "
        "SUM(sv2) AS s2, MAX(last) AS last FROM uv GROUP BY u1, u2, u3 HAVING SUM(n) >= 2) "
        f"SELECT 0, {_period_sql('units.last', period)}, units.m, uv.v, SUM(uv.n), "
        "SUM(uv.n * uv.n), 0.0, 0.0, 0.0 "
        "FROM uv JOIN units ON uv.u1 = units.u1 AND uv.u2 = units.u2 AND uv.u3 = units.u3 "
        "GROUP BY 2, 3, 4 "
        f"UNION ALL SELECT 1, {_period_sql('last', period)}, COUNT(*), NULL, SUM(m), 0, "
        "SUM(s1), SUM(s2), SUM((m * s2 - s1 * s1) / (m - 1.0)) FROM units GROUP BY 2"
    )
    nominal, interval = [], []
    for which, period_start, m, value, total, squares, s1, s2, observed in _fetch(sql, params):
        if which == 0:
            nominal.append((period_start, m, value, total, squares))
        else:
            interval.append((period_start, m, total, s1, s2, observed))
    interval.sort(key=lambda row: _as_date(row[0]))
    return nominal, interval


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
    the most common number of raters (ratings rounded to whole points), and a
    series with each period's alpha (units completed in that period) and the
    cumulative alpha up to its end. Human annotations of non-gold items only.
    """
    chosen = period or _auto_period(project)
    return _cached("agreement", project, lambda: _agreement(project=project, period=chosen), chosen)


def _agreement(*, project: Project, period: str) -> dict:
    questions = []
    for question in Question.objects.filter(project=project).order_by("position", "id"):
        entry: dict[str, Any] = {"question": question.name, "kind": question.kind}
        if question.kind == QuestionKind.CORRECTION:
            entry.update(
                level=None,
                units=0,
                krippendorff_alpha=None,
                fleiss_kappa=None,
                series=[],
                note="agreement is not computed for free-form corrections",
            )
            questions.append(entry)
            continue
        if question.kind == QuestionKind.RATING:
            nominal_rows, interval_rows = _rating_sums(question, period)
            _, _, by_raters = _nominal_agreement(nominal_rows)
            overall, series = _interval_agreement(interval_rows)
            entry["level"] = "interval"
        else:
            overall, series, by_raters = _nominal_agreement(_nominal_sums(question, period))
            entry["level"] = "nominal"
        entry.update(overall)
        entry["fleiss_kappa"] = _fleiss(by_raters)
        entry["series"] = series
        entry["note"] = (
            "ranking agreement on the response ranked first"
            if question.kind == QuestionKind.RANKING
            else ""
        )
        questions.append(entry)
    return {"project": project.id, "period": period, "questions": questions}


def label_distributions(*, project: Project) -> dict:
    """How labels are spread: pairwise choice (A/B/tie), strength and the chosen
    response's position, ratings per aspect and value, the top-ranked position."""
    return _cached("labels", project, lambda: _labels(project=project))


def _letter(position: int | None) -> str:
    if position is None:
        return "?"
    return chr(ord("A") + position) if position < 26 else str(position + 1)


def _labels(*, project: Project) -> dict:
    questions = []
    for question in Question.objects.filter(project=project).order_by("position", "id"):
        entry: dict[str, Any] = {"question": question.name, "kind": question.kind}
        if question.kind == QuestionKind.PAIRWISE:
            rows = (
                PairwiseAnswer.objects.filter(question=question)
                .values("annotation__source", "tie", "chosen__position", "strength")
                .annotate(n=Count("id"))
                .order_by()
            )
            choice: dict[tuple[str, str], int] = defaultdict(int)
            strength: dict[str, int] = defaultdict(int)
            position: dict[str, int] = defaultdict(int)
            for row in rows:
                source = row["annotation__source"]
                label = "tie" if row["tie"] else _letter(row["chosen__position"])
                choice[(source, label)] += row["n"]
                if row["strength"] is not None:
                    strength[str(row["strength"])] += row["n"]
                if not row["tie"]:
                    position[_letter(row["chosen__position"])] += row["n"]
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
            from annotation.models import Response

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
    overlap = project.overlap
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


_MAJORITY = """
WITH mine AS ({answers}),
uv AS (SELECT u1, u2, u3, v, COUNT(*) AS n FROM mine GROUP BY u1, u2, u3, v),
units AS (
    SELECT u1, u2, u3, MAX(n) AS c1 FROM uv GROUP BY u1, u2, u3 HAVING SUM(n) >= 2
),
tops AS (
    SELECT uv.u1, uv.u2, uv.u3, units.c1,
           SUM(CASE WHEN uv.n = units.c1 THEN 1 ELSE 0 END) AS k1,
           MAX(CASE WHEN uv.n < units.c1 THEN uv.n ELSE 0 END) AS c2
    FROM uv JOIN units ON uv.u1 = units.u1 AND uv.u2 = units.u2 AND uv.u3 = units.u3
    GROUP BY uv.u1, uv.u2, uv.u3, units.c1
),
outcome AS (
    SELECT uv.u1, uv.u2, uv.u3, uv.v,
           CASE WHEN uv.n = tops.c1 AND tops.k1 = 1 AND tops.c1 - 1 > tops.c2
                THEN 1 ELSE 0 END AS agreed,
           CASE WHEN (uv.n = tops.c1 AND tops.k1 = 1 AND tops.c1 - 1 > tops.c2)
                  OR (uv.n = tops.c1 AND tops.k1 = 2)
                  OR (uv.n < tops.c1 AND tops.k1 = 1) THEN 1 ELSE 0 END AS counted
    FROM uv JOIN tops ON uv.u1 = tops.u1 AND uv.u2 = tops.u2 AND uv.u3 = tops.u3
)
SELECT mine.who, SUM(outcome.agreed), SUM(outcome.counted)
FROM mine
JOIN outcome ON mine.u1 = outcome.u1 AND mine.u2 = outcome.u2 AND mine.u3 = outcome.u3
    AND mine.v = outcome.v
GROUP BY mine.who
"""


def _majority_agreement(question: Question) -> dict[int, tuple[int, int]]:
    """annotator id -> (units agreeing with the others' majority, units with such a majority).

    The same rule as ``agreement.annotator_majority_agreement``: the annotator's
    own vote is left out; a unit counts when the others' top label is unique.
    With c1 the unit's highest count, k1 how many labels reach it and c2 the next
    count, leaving out one vote for label v of count n gives: n = c1 and k1 = 1 →
    counts and agrees when c1 - 1 > c2; n = c1 and k1 = 2 → counts, disagrees;
    n < c1 and k1 = 1 → counts, disagrees; anything else is a tie among the others.
    """
    if question.kind not in (QuestionKind.PAIRWISE, QuestionKind.RATING, QuestionKind.RANKING):
        return {}
    mine, params = _sql(_answers_by_annotator(question))
    rows = _fetch(_MAJORITY.format(answers=mine), params)
    return {who: (int(agreed), int(counted)) for who, agreed, counted in rows}


def _answers_by_annotator(question: Question) -> QuerySet:
    item = F("annotation__item_id")
    who = F("annotation__annotator_id")
    if question.kind == QuestionKind.PAIRWISE:
        return _human_answers(PairwiseAnswer, question).values(
            who=who,
            u1=item,
            u2=Least("chosen_id", "rejected_id"),
            u3=Greatest("chosen_id", "rejected_id"),
            v=Case(
                When(tie=True, then=Value("tie")),
                When(chosen_id__lt=F("rejected_id"), then=Value("lo")),
                default=Value("hi"),
                output_field=CharField(),
            ),
        )
    if question.kind == QuestionKind.RATING:
        return _human_answers(RatingAnswer, question).values(
            who=who, u1=item, u2=F("response_id"), u3=F("aspect"), v=Round("value")
        )
    return _human_answers(RankingAnswer, question).values(
        who=who, u1=item, u2=Value(0), u3=Value(""), v=Cast(KT("ranking__0__0"), CharField())
    )


def _gold_accuracy(project: Project) -> dict[int, tuple[int, int]]:
    """annotator id -> (correct, scored) on pairwise gold units, as the quality report scores them."""
    questions = {q.id: q for q in Question.objects.filter(project=project)}
    truth: dict[tuple[int, int, int, int], str] = {}
    gold_items = Item.objects.filter(project=project, is_gold=True).exclude(gold_answer=None)
    for item in gold_items.prefetch_related("responses"):
        by_position = {r.position: r.id for r in item.responses.all()}
        for answer in (item.gold_answer or {}).get("answers", []):
            if not isinstance(answer, dict):
                continue
            question = next(
                (q for q in questions.values() if answer.get("question") in (q.id, q.name)), None
            )
            if question is None or question.kind != QuestionKind.PAIRWISE:
                continue
            chosen = by_position.get(answer.get("chosen"))
            rejected = by_position.get(answer.get("rejected"))
            if chosen is None or rejected is None:
                continue
            lo, hi = sorted((chosen, rejected))
            truth[(question.id, item.id, lo, hi)] = (
                "tie" if answer.get("tie") else ("lo" if chosen == lo else "hi")
            )
    if not truth:
        return {}
    scores: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    answers = PairwiseAnswer.objects.filter(
        annotation__project=project,
        annotation__source=Source.HUMAN,
        annotation__item_id__in=_gold_ids(project.id),
    ).values_list(
        "annotation__annotator_id",
        "question_id",
        "annotation__item_id",
        "chosen_id",
        "rejected_id",
        "tie",
    )
    for who, question_id, item_id, chosen, rejected, tie in answers.iterator(chunk_size=5000):
        lo, hi = sorted((chosen, rejected))
        expected = truth.get((question_id, item_id, lo, hi))
        if expected is None:
            continue
        given = "tie" if tie else ("lo" if chosen == lo else "hi")
        scores[who][1] += 1
        scores[who][0] += given == expected
    return {who: (correct, scored) for who, (correct, scored) in scores.items()}


def _median_seconds(project: Project) -> dict[int, float]:
    humans = Annotation.objects.filter(
        project=project, source=Source.HUMAN, time_spent_ms__isnull=False
    )
    if connection.vendor == "postgresql":
        inner, params = _sql(humans.values("annotator_id", "time_spent_ms"))
        rows = _fetch(
            "SELECT annotator_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY time_spent_ms) "
            f"FROM ({inner}) t GROUP BY annotator_id",
            params,
        )
        return {who: float(value) / 1000 for who, value in rows}
    # SQLite has no percentile aggregate; its databases are small (tests, demos).
    from statistics import median

    times: dict[int, list[int]] = defaultdict(list)
    for who, ms in humans.values_list("annotator_id", "time_spent_ms"):
        times[who].append(ms)
    return {who: median(values) / 1000 for who, values in times.items()}


def annotator_table(*, project: Project, show_usernames: bool = False) -> dict:
    """One row per human annotator: pseudonym (and username for admins), judgements,
    agreement with the majority of the others, gold accuracy, median seconds per
    item, and the flags of the quality report (below the project's threshold); with
    each annotator's reliability in the latest reliability job, when there is one."""
    table = _cached(
        "annotators",
        project,
        lambda: _annotators(project=project, show_usernames=show_usernames),
        show_usernames,
    )
    # Read apart from the cached table: a reliability job that finishes changes no annotation.
    job_id, by_annotator = latest_reliability_by_annotator(project=project)
    salt = str(project.id)
    by_pseudonym = {pseudonym(who, salt): value for who, value in by_annotator.items()}
    return {
        **table,
        "reliability_job": job_id,
        "annotators": [
            {**row, "reliability": by_pseudonym.get(row["annotator"])}
            for row in table["annotators"]
        ],
    }


def _annotators(*, project: Project, show_usernames: bool) -> dict:
    counts = dict(
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .values_list("annotator_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("annotator_id", "n")
    )
    pooled: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for question in Question.objects.filter(project=project).exclude(kind=QuestionKind.CORRECTION):
        if question.kind == QuestionKind.RATING:
            continue  # interval data: the quality report pools nominal questions only
        for who, (agreed, counted) in _majority_agreement(question).items():
            pooled[who][0] += agreed
            pooled[who][1] += counted
    gold = _gold_accuracy(project)
    medians = _median_seconds(project)
    usernames: dict[int, str] = {}
    if show_usernames:
        from django.contrib.auth import get_user_model

        usernames = dict(
            get_user_model().objects.filter(id__in=list(counts)).values_list("id", "username")
        )
    threshold = project.quality_threshold
    salt = str(project.id)
    rows = []
    for who, judgements in counts.items():
        agreed, counted = pooled.get(who, (0, 0))
        correct, scored = gold.get(who, (0, 0))
        agreement_value = agreed / counted if counted else None
        gold_value = correct / scored if scored else None
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
            "median_seconds": _round(medians.get(who)),
            "flagged": bool(reasons),
            "reasons": reasons,
        }
        if show_usernames:
            row["username"] = usernames.get(who, "")
        rows.append(row)
    rows.sort(key=lambda r: (-r["judgements"], r["annotator"]))
    return {"project": project.id, "quality_threshold": threshold, "annotators": rows}


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

"""The data explorer: which items match a curator's filters, what each row shows, similar
items by their stored embeddings, and the bulk actions on a selection or a whole filter.

Filters and sorting arrive as URL query parameters (``ExplorerQuery.from_params``), so
a view can be shared by its address. The query is one SQL statement: per-item figures
that a filter or a sort needs (annotation counts, the latest scoring job's importance)
are correlated subqueries, agreement is the stored ``Item.agreement``, and a page's rows
get their figures in a handful of grouped queries over the page's ids only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import SearchQuery
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from annotation.errors import ValidationFailed
from annotation.models import Annotation, Item, Project, Response, Source
from annotation.pseudonyms import pseudonym
from annotation.search import SEARCH_CONFIG, item_title
from curation.conversation import conversation_text
from curation.models import (
    Artifact,
    Job,
    JobKind,
    JobStatus,
    PairScore,
    ReviewEntry,
    ReviewSource,
)
from curation.storage import absolute

PAGE_SIZE = 50
SORTS = ("id", "created", "title", "priority", "annotations", "agreement", "importance")
YES_NO = {"yes": True, "no": False}
SOURCES = (Source.HUMAN.value, Source.AI.value)
BULK_ACTIONS = ("tag_add", "tag_remove", "priority", "exclude", "include", "review")
_META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
CHUNK = 2000


@dataclass(frozen=True)
class ExplorerQuery:
    """Filters and sort of the explorer, parsed from (and written back to) URL parameters."""

    q: str = ""
    tag: str = ""
    meta: str = ""
    gold: bool | None = None
    excluded: bool | None = None
    annotations_min: int | None = None
    annotations_max: int | None = None
    source: str = ""
    agreement_min: float | None = None
    agreement_max: float | None = None
    annotator: str = ""
    kept: bool | None = None
    importance_min: float | None = None
    importance_max: float | None = None
    suspect: bool | None = None
    sort: str = "id"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExplorerQuery:
        """Parse query parameters; a bad value is a 400 naming the parameter."""
        values: dict[str, Any] = {}
        for name in ("q", "tag", "meta", "annotator"):
            text = str(params.get(name) or "").strip()
            if len(text) > 500:
                raise ValidationFailed("At most 500 characters.", field=name)
            values[name] = text
        if values["meta"]:
            key, sep, _ = values["meta"].partition("=")
            if not sep or not _META_KEY.match(key.strip()):
                raise ValidationFailed(
                    "Write key=value; the key has letters, digits, _ or - only.", field="meta"
                )
        for name in ("gold", "excluded", "kept", "suspect"):
            raw = str(params.get(name) or "").strip().lower()
            if raw and raw not in YES_NO:
                raise ValidationFailed("Choose yes or no.", field=name)
            values[name] = YES_NO.get(raw)
        for name in ("annotations_min", "annotations_max"):
            values[name] = _number(params, name, int, low=0, high=10**6)
        for name in ("agreement_min", "agreement_max"):
            values[name] = _number(params, name, float, low=0.0, high=1.0)
        for name in ("importance_min", "importance_max"):
            values[name] = _number(params, name, float, low=-1e12, high=1e12)
        source = str(params.get("source") or "").strip().lower()
        if source and source not in SOURCES:
            raise ValidationFailed("Choose human or ai.", field="source")
        values["source"] = source
        sort = str(params.get("sort") or "id").strip()
        if sort.lstrip("-") not in SORTS:
            raise ValidationFailed(
                f"Sort by one of {', '.join(SORTS)} (- for descending).", field="sort"
            )
        values["sort"] = sort
        return cls(**values)

    def as_params(self) -> dict[str, str]:
        """The non-default parameters, in the URL's spelling."""
        out: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None or value == "" or (spec.name == "sort" and value == "id"):
                continue
            out[spec.name] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        return out

    @property
    def is_filtered(self) -> bool:
        return any(name != "sort" for name in self.as_params())


def _number(params: Mapping[str, Any], name: str, kind: type, *, low: float, high: float):
    raw = str(params.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValidationFailed(
            f"Must be {'a whole number' if kind is int else 'a number'}.", field=name
        ) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValidationFailed(f"Must be between {low:g} and {high:g}.", field=name)
    return value


# --------------------------------------------------------------------------- reading


def latest_scoring_job(*, project: Project) -> Job | None:
    """The newest succeeded FiFA or suspect-labels job: its ``PairScore`` rows are the scores shown."""
    return (
        Job.objects.filter(
            project=project,
            kind__in=(JobKind.FIFA, JobKind.SUSPECTS),
            status=JobStatus.SUCCEEDED,
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def _has_tag(tag: str) -> Q:
    if connection.features.supports_json_field_contains:
        return Q(tags__contains=[tag])
    # SQLite has no JSON containment; json_each gives an exact, case-sensitive match.
    return Q(
        id__in=RawSQL(
            "SELECT i.id FROM annotation_item i, json_each(i.tags) t "
            "WHERE t.type = 'text' AND t.value = %s",
            (tag,),
        )
    )


def _metadata_q(meta: str) -> Q:
    key, _, raw = meta.partition("=")
    key, raw = key.strip(), raw.strip()
    # Metadata values are JSON: "5" in the URL matches the string "5" and the number 5.
    match = Q(**{f"metadata__{key}": raw})
    for parse in (int, float):
        try:
            number = parse(raw)
        except ValueError:
            continue
        if math.isfinite(number):
            match |= Q(**{f"metadata__{key}": number})
    if raw.lower() in ("true", "false"):
        match |= Q(**{f"metadata__{key}": raw.lower() == "true"})
    return match


def _annotator_ids(*, project: Project, name: str) -> list[int]:
    """The users whose pseudonym in this project is ``name`` (a pseudonym is one-way)."""
    candidates = (
        Annotation.objects.filter(project=project, annotator__isnull=False)
        .order_by()
        .values_list("annotator_id", flat=True)
        .distinct()
    )
    return [uid for uid in candidates if pseudonym(uid, str(project.id)) == name]


def explorer_items(*, project: Project, query: ExplorerQuery) -> QuerySet[Item]:
    """The project's items matching ``query``, in its sort order (ties by id)."""
    items = Item.objects.filter(project=project)
    if query.q:
        if connection.vendor == "postgresql":
            items = items.filter(
                search_vector=SearchQuery(query.q, config=SEARCH_CONFIG, search_type="websearch")
            )
        else:
            for word in query.q.split():
                items = items.filter(search_text__icontains=word.strip('"'))
    if query.tag:
        items = items.filter(_has_tag(query.tag))
    if query.meta:
        items = items.filter(_metadata_q(query.meta))
    if query.gold is not None:
        items = items.filter(is_gold=query.gold)
    if query.excluded is not None:
        items = items.filter(excluded=query.excluded)
    if query.source:
        items = items.filter(
            Exists(Annotation.objects.filter(item=OuterRef("pk"), source=query.source))
        )
    if query.annotator:
        ids = _annotator_ids(project=project, name=query.annotator)
        items = items.filter(
            Exists(Annotation.objects.filter(item=OuterRef("pk"), annotator_id__in=ids))
        )
    sort_key = query.sort.lstrip("-")
    if (
        query.annotations_min is not None
        or query.annotations_max is not None
        or (sort_key == "annotations")
    ):
        counted = Annotation.objects.filter(item=OuterRef("pk"))
        if query.source:
            counted = counted.filter(source=query.source)
        # COUNT(*), not COUNT(id): the (item, source) index answers it without the table.
        count = counted.order_by().values("item").annotate(n=Count("*")).values("n")
        items = items.annotate(
            annotation_total=Coalesce(Subquery(count, output_field=IntegerField()), Value(0))
        )
        if query.annotations_min is not None:
            items = items.filter(annotation_total__gte=query.annotations_min)
        if query.annotations_max is not None:
            items = items.filter(annotation_total__lte=query.annotations_max)
    # Item.agreement is stored and kept by the answer writers (annotation.agreement_item
    # defines it), so the range and the sort use the (project, agreement) index.
    if query.agreement_min is not None:
        items = items.filter(agreement__gte=query.agreement_min)
    if query.agreement_max is not None:
        items = items.filter(agreement__lte=query.agreement_max)
    score_filters = (query.kept, query.suspect, query.importance_min, query.importance_max)
    if any(value is not None for value in score_filters) or sort_key == "importance":
        items = _score_filters(items, project=project, query=query)
    return items.order_by(*_ordering(query.sort))


def _score_filters(items: QuerySet[Item], *, project: Project, query: ExplorerQuery):
    job = latest_scoring_job(project=project)
    scores = PairScore.objects.filter(job=job, item=OuterRef("pk"))
    if query.kept is not None:
        kept = Exists(scores.filter(kept=True))
        items = items.filter(kept if query.kept else ~kept)
    if query.suspect is not None:
        suspect = Exists(scores.filter(suspect=True))
        items = items.filter(suspect if query.suspect else ~suspect)
    if (
        query.importance_min is not None
        or query.importance_max is not None
        or (query.sort.lstrip("-") == "importance")
    ):
        top = scores.order_by().values("item").annotate(top=Max("importance")).values("top")
        items = items.annotate(importance=Subquery(top))
        if query.importance_min is not None:
            items = items.filter(importance__gte=query.importance_min)
        if query.importance_max is not None:
            items = items.filter(importance__lte=query.importance_max)
    return items


def _ordering(sort: str) -> list:
    descending = sort.startswith("-")
    column = {
        "id": "id",
        "created": "created_at",
        "title": "title",
        "priority": "priority",
        "annotations": "annotation_total",
        "agreement": "agreement",
        "importance": "importance",
    }[sort.lstrip("-")]
    expression = F(column)
    # Items without a figure (no agreement, no score) go last either way.
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return [ordered, "-id" if descending else "id"]


def explorer_rows(*, project: Project, items: Sequence[Item]) -> list[dict[str, Any]]:
    """What the table shows for one page of items, in a handful of queries over their ids."""
    ids = [item.id for item in items]
    if not ids:
        return []
    responses = dict(
        Response.objects.filter(item_id__in=ids)
        .order_by()
        .values("item_id")
        .annotate(n=Count("id"))
        .values_list("item_id", "n")
    )
    counts: dict[int, dict[str, int]] = {i: {"human": 0, "ai": 0} for i in ids}
    for item_id, source, n in (
        Annotation.objects.filter(item_id__in=ids)
        .order_by()
        .values("item_id", "source")
        .annotate(n=Count("id"))
        .values_list("item_id", "source", "n")
    ):
        counts[item_id][source] = n
    job = latest_scoring_job(project=project)
    scores: dict[int, dict[str, Any]] = {}
    if job is not None:
        for row in (
            PairScore.objects.filter(job=job, item_id__in=ids)
            .order_by()
            .values("item_id")
            .annotate(
                pairs=Count("id"),
                kept=Count("id", filter=Q(kept=True)),
                suspect=Count("id", filter=Q(suspect=True)),
                importance=Max("importance"),
            )
        ):
            scores[row["item_id"]] = row
    rows = []
    for item in items:
        score = scores.get(item.id)
        rows.append(
            {
                "id": item.id,
                "external_id": item.external_id,
                "title": item.title or item_title(item.conversation, item.external_id),
                "responses": responses.get(item.id, 0),
                "annotations_human": counts[item.id]["human"],
                "annotations_ai": counts[item.id]["ai"],
                "agreement": item.agreement,
                "tags": [str(tag) for tag in (item.tags or [])],
                "is_gold": item.is_gold,
                "excluded": item.excluded,
                "priority": item.priority,
                "created_at": item.created_at,
                "job": job.id if job else None,
                "pairs_scored": score["pairs"] if score else 0,
                "kept": score["kept"] if score else None,
                "suspect": score["suspect"] if score else None,
                "importance": score["importance"] if score else None,
            }
        )
    return rows


def explorer_page_items(queryset: QuerySet[Item]) -> QuerySet[Item]:
    """The columns a page reads: not the search document."""
    return queryset.defer("search_text", "search_vector", "gold_answer", "metadata")


def exact_count_limit() -> int:
    """Up to this many matches the explorer counts exactly; above, PostgreSQL's estimate."""
    return int(getattr(settings, "BALLOT_EXPLORER_EXACT_COUNT", 10_000))


@dataclass(frozen=True)
class ExplorerPage:
    """One page of the explorer: its items in order, and the (exact or estimated) total."""

    number: int
    size: int
    items: list[Item]
    has_next: bool
    count: int
    count_exact: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.size))


def explorer_count(queryset: QuerySet[Item]) -> tuple[int, bool]:
    """``(count, exact)`` of the items ``queryset`` matches.

    Counting 100,000 matches means reading 100,000 index entries or rows on every page
    load. So on PostgreSQL the count stops at ``exact_count_limit()`` + 1 rows; below
    that it is exact, above it the planner's estimate for the whole filter is given
    (never less than the limit), which the page shows as "about N". SQLite databases
    are small: always exact.
    """
    plain = queryset.order_by()
    if connection.vendor != "postgresql":
        return plain.count(), True
    limit = exact_count_limit()
    bounded = plain.values("pk")[: limit + 1].count()
    if bounded <= limit:
        return bounded, True
    sql, params = plain.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return max(int(plan[0]["Plan"]["Plan Rows"]), limit + 1), False


@contextmanager
def _interactive_session() -> Iterator[None]:
    """No JIT compilation for a page's queries (PostgreSQL only).

    A filter on per-item counts or scores has correlated subqueries whose cost estimate
    passes ``jit_above_cost``; compiling them takes longer than running them for a page.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        yield


def explorer_page(*, queryset: QuerySet[Item], number: int, size: int) -> ExplorerPage:
    """Page ``number`` (from 1) of ``queryset``, ``size`` items a page.

    The page's ids come first from a lean query over the filter and sort (for the
    plain id order, a walk of the (project, id) index), then its rows by id, so a deep
    page does not read the wide rows it skips. One id more than a page tells whether
    another page follows, whatever the count says.
    """
    offset = (number - 1) * size
    with _interactive_session():
        ids = list(queryset.values_list("pk", flat=True)[offset : offset + size + 1])
        has_next = len(ids) > size
        ids = ids[:size]
        rows = {item.pk: item for item in explorer_page_items(Item.objects.filter(pk__in=ids))}
        count, exact = explorer_count(queryset)
    if not exact:
        # An estimate may fall short of what this page has already seen.
        count = max(count, offset + len(ids) + int(has_next))
    return ExplorerPage(
        number=number,
        size=size,
        items=[rows[pk] for pk in ids if pk in rows],
        has_next=has_next,
        count=count,
        count_exact=exact,
    )


# --------------------------------------------------------------------------- similar items


@dataclass(frozen=True)
class Similar:
    item: Item
    similarity: float


class SimilarUnavailable(Exception):
    """No embeddings cover the item (no embed job yet, or the item is newer than it)."""


def latest_embedding(*, project: Project) -> tuple[Job, Artifact] | None:
    artifact = (
        Artifact.objects.filter(
            project=project,
            kind="embeddings",
            job__kind=JobKind.EMBED,
            job__status=JobStatus.SUCCEEDED,
            path__endswith="embeddings.npy",
        )
        .select_related("job")
        .order_by("-job__finished_at", "-id")
        .first()
    )
    return (artifact.job, artifact) if artifact else None


@lru_cache(maxsize=4)
def _prompt_rows(
    project_id: int, job_id: int, job_started: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Item ids and the embedding row of each one's prompt, for the items the job saw.

    The embed job's rows are the project's distinct texts, prompts first, by item id
    (``project_texts``); the items created before the job started give the same prompt
    order now, so their rows are found without storing a map.
    """
    item_ids: list[int] = []
    rows: list[int] = []
    seen: dict[str, int] = {}
    for item_id, conversation in (
        Item.objects.filter(project_id=project_id, created_at__lte=job_started)
        .order_by("id")
        .values_list("id", "conversation")
        .iterator(2000)
    ):
        row = seen.setdefault(conversation_text(conversation), len(seen))
        item_ids.append(item_id)
        rows.append(row)
    return np.asarray(item_ids, dtype=np.int64), np.asarray(rows, dtype=np.int64)


def item_similar_list(*, project: Project, item: Item, limit: int = 10) -> list[Similar]:
    """The items whose prompts are nearest to ``item``'s by cosine similarity of the stored embeddings."""
    found = latest_embedding(project=project)
    if found is None:
        raise SimilarUnavailable("No embedding job has finished for this project yet.")
    job, artifact = found
    started = job.started_at or job.created_at
    item_ids, rows = _prompt_rows(project.id, job.id, started)
    matrix = np.load(absolute(artifact.path), mmap_mode="r")
    position = np.flatnonzero(item_ids == item.id)
    if not len(position) or rows.max(initial=-1) >= matrix.shape[0]:
        raise SimilarUnavailable("This item is newer than the latest embedding job.")
    # One row per distinct prompt: items sharing a prompt share a row.
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    vectors = np.asarray(matrix[unique_rows], dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    query = vectors[inverse[position[0]]] / norms[inverse[position[0]]]
    similarity = (vectors @ query) / norms
    per_item = similarity[inverse]
    per_item[position[0]] = -np.inf
    order = np.argsort(-per_item, kind="stable")[:limit]
    chosen = [int(item_ids[i]) for i in order if np.isfinite(per_item[i])]
    by_id = Item.objects.filter(id__in=chosen).defer("search_text", "search_vector").in_bulk()
    return [
        Similar(item=by_id[i], similarity=float(per_item[order[n]]))
        for n, i in enumerate(chosen)
        if i in by_id
    ]


# --------------------------------------------------------------------------- bulk actions


def _bulk_value(action: str, value: Any) -> Any:
    if action not in BULK_ACTIONS:
        raise ValidationFailed(f"Choose one of {', '.join(BULK_ACTIONS)}.", field="action")
    if action in ("tag_add", "tag_remove"):
        tag = str(value or "").strip()
        if not tag or len(tag) > 64:
            raise ValidationFailed("A tag of 1 to 64 characters.", field="value")
        return tag
    if action == "priority":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValidationFailed("Priority must be a number.", field="value") from None
        if not math.isfinite(number) or abs(number) > 1e9:
            raise ValidationFailed("Priority must be a finite number.", field="value")
        return number
    if action == "review":
        reason = str(value or "").strip()
        if len(reason) > 500:
            raise ValidationFailed("A reason of at most 500 characters.", field="value")
        return reason
    return None


def explorer_bulk_targets(
    *, project: Project, item_ids: Sequence[int] | None, query: ExplorerQuery | None
) -> QuerySet[Item]:
    """The items a bulk action touches: the chosen ids of this project, or the whole filter."""
    if item_ids is not None:
        if not item_ids:
            raise ValidationFailed("Select at least one item.", field="item_ids")
        return Item.objects.filter(project=project, id__in=list(item_ids))
    if query is None:
        raise ValidationFailed("Send item_ids or a filter.", field="item_ids")
    return explorer_items(project=project, query=query).order_by()


@transaction.atomic
def explorer_bulk_apply(
    *,
    project: Project,
    user: AbstractBaseUser,
    action: str,
    value: Any = None,
    item_ids: Sequence[int] | None = None,
    query: ExplorerQuery | None = None,
    dry_run: bool = False,
) -> int:
    """Apply one bulk action to a selection or to every item matching a filter; returns how many.

    ``tag_add``/``tag_remove`` (value: the tag), ``priority`` (value: a number),
    ``exclude``/``include`` (from exports and curation jobs), ``review`` (value: the
    reason; items with an open entry from the explorer keep it). One transaction: all or nothing.
    With ``dry_run`` nothing is written and the count is what the action would touch.
    """
    cleaned = _bulk_value(action, value)
    targets = explorer_bulk_targets(project=project, item_ids=item_ids, query=query)
    ids = list(targets.values_list("id", flat=True))
    if dry_run or not ids:
        return len(ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if action in ("tag_add", "tag_remove"):
            rows = list(Item.objects.filter(id__in=chunk).only("id", "tags"))
            for row in rows:
                tags = [t for t in (row.tags or []) if t != cleaned]
                row.tags = [*tags, cleaned] if action == "tag_add" else tags
            Item.objects.bulk_update(rows, ["tags"])
        elif action == "priority":
            Item.objects.filter(id__in=chunk).update(priority=cleaned)
        elif action in ("exclude", "include"):
            Item.objects.filter(id__in=chunk).update(excluded=action == "exclude")
        else:
            open_ids = set(
                ReviewEntry.objects.filter(
                    item_id__in=chunk, source=ReviewSource.EXPLORER, resolved_at__isnull=True
                ).values_list("item_id", flat=True)
            )
            # ignore_conflicts: one open entry per item and source (a constraint), even racing.
            ReviewEntry.objects.bulk_create(
                (
                    ReviewEntry(
                        item_id=i,
                        reason=cleaned,
                        source=ReviewSource.EXPLORER,
                        created_by=user,
                    )
                    for i in chunk
                    if i not in open_ids
                ),
                ignore_conflicts=True,
            )
    return len(ids)

"""The explorer's query and bulk actions as an API: the same filters as the page's URL.

Admins and curators only (an annotator of the project gets 403, anyone else 404).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ValidationFailed, validated
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.explorer import (
    BULK_ACTIONS,
    SORTS,
    ExplorerQuery,
    explorer_bulk_apply,
    explorer_items,
    explorer_page,
    explorer_rows,
    latest_scoring_job,
)

TAG = ["explorer"]
MAX_PAGE_SIZE = 200


class ExplorerRowOut(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    title = serializers.CharField(help_text="The first words of the prompt.")
    responses = serializers.IntegerField()
    annotations_human = serializers.IntegerField()
    annotations_ai = serializers.IntegerField()
    agreement = serializers.FloatField(
        allow_null=True,
        help_text="Share of people's pairwise judgements matching the majority; null under two.",
    )
    tags = serializers.ListField(child=serializers.CharField())
    is_gold = serializers.BooleanField()
    excluded = serializers.BooleanField()
    priority = serializers.FloatField()
    created_at = serializers.DateTimeField()
    job = serializers.IntegerField(allow_null=True, help_text="The latest FiFA/suspects job.")
    pairs_scored = serializers.IntegerField()
    kept = serializers.IntegerField(allow_null=True, help_text="Pairs kept by that job.")
    suspect = serializers.IntegerField(allow_null=True, help_text="Pairs it flagged as suspect.")
    importance = serializers.FloatField(allow_null=True, help_text="Highest pair importance.")


class ExplorerPageOut(serializers.Serializer):
    count = serializers.IntegerField(
        help_text="Items matching; PostgreSQL's estimate when count_exact is false."
    )
    count_exact = serializers.BooleanField(
        help_text="False above BALLOT_EXPLORER_EXACT_COUNT matches (default 10,000): count and "
        "pages are then estimates; has_next is always exact."
    )
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    pages = serializers.IntegerField()
    has_next = serializers.BooleanField()
    job = serializers.IntegerField(allow_null=True)
    results = ExplorerRowOut(many=True)


class BulkIn(serializers.Serializer):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
    value = serializers.CharField(
        required=False, allow_blank=True, max_length=500, help_text="Tag, priority or reason."
    )
    item_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=100_000
    )
    filter = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="The explorer's query parameters; every matching item is touched.",
    )
    dry_run = serializers.BooleanField(default=False)


class BulkOut(serializers.Serializer):
    action = serializers.CharField()
    count = serializers.IntegerField(help_text="Items touched (or, on a dry run, to be touched).")
    dry_run = serializers.BooleanField()


def _param(name: str, kind=OpenApiTypes.STR, description: str = "", **extra) -> OpenApiParameter:
    return OpenApiParameter(name, kind, description=description, **extra)


FILTER_PARAMETERS = [
    _param("q", description="Full-text search over prompts and responses."),
    _param("tag", description="Items carrying this tag."),
    _param("meta", description="A metadata field, key=value."),
    _param("gold", enum=["yes", "no"]),
    _param("excluded", enum=["yes", "no"], description="Excluded from exports."),
    _param("annotations_min", OpenApiTypes.INT, "Annotations (of `source` when given)."),
    _param("annotations_max", OpenApiTypes.INT),
    _param("source", enum=["human", "ai"], description="Items with an annotation of this source."),
    _param("agreement_min", OpenApiTypes.FLOAT),
    _param("agreement_max", OpenApiTypes.FLOAT),
    _param("annotator", description="Items labelled by this pseudonym."),
    _param("kept", enum=["yes", "no"], description="Kept by the latest FiFA/suspects job."),
    _param("importance_min", OpenApiTypes.FLOAT),
    _param("importance_max", OpenApiTypes.FLOAT),
    _param("suspect", enum=["yes", "no"]),
    _param("sort", enum=[*SORTS, *(f"-{s}" for s in SORTS)]),
]


def _positive(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name) or str(default)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise ValidationFailed(f"A whole number from 1 to {high}.", field=name)
    return int(raw)


class ExploreApi(APIView):
    @extend_schema(
        tags=TAG,
        parameters=[
            *FILTER_PARAMETERS,
            _param("page", OpenApiTypes.INT),
            _param("page_size", OpenApiTypes.INT, f"At most {MAX_PAGE_SIZE}; default 50."),
        ],
        responses=ExplorerPageOut,
        summary="The project's items matching the explorer's filters, one page (admin, curator)",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        query = ExplorerQuery.from_params(request.query_params)
        size = _positive(request, "page_size", 50, MAX_PAGE_SIZE)
        number = _positive(request, "page", 1, 10**9)
        page = explorer_page(
            queryset=explorer_items(project=project, query=query), number=number, size=size
        )
        if not page.items and number > 1:
            raise ValidationFailed(
                f"There are {'about ' if not page.count_exact else ''}{page.pages} page(s).",
                field="page",
            )
        job = latest_scoring_job(project=project)
        data = {
            "count": page.count,
            "count_exact": page.count_exact,
            "page": page.number,
            "page_size": size,
            "pages": page.pages,
            "has_next": page.has_next,
            "job": job.id if job else None,
            "results": explorer_rows(project=project, items=page.items),
        }
        return Response(ExplorerPageOut(data).data)


class ExploreBulkApi(APIView):
    @extend_schema(
        tags=TAG,
        request=BulkIn,
        responses=BulkOut,
        summary="Tag, set priority, exclude or send to review a selection or a whole filter "
        "(admin, curator; dry_run counts)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(BulkIn, request.data)
        if ("item_ids" in data) == ("filter" in data):
            raise ValidationFailed("Send either item_ids or filter.", field="item_ids")
        count = explorer_bulk_apply(
            project=project,
            user=request.user,
            action=data["action"],
            value=data.get("value"),
            item_ids=data.get("item_ids"),
            query=ExplorerQuery.from_params(data["filter"]) if "filter" in data else None,
            dry_run=data["dry_run"],
        )
        return Response({"action": data["action"], "count": count, "dry_run": data["dry_run"]})

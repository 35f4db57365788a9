"""Chart-data API for the quality and datasets pages: the JSON every chart draws.

Admins and curators only (an annotator of the project gets 403, anyone else
404); annotators appear as pseudonyms, with usernames for the project's admins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ValidationFailed
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import charts
from curation.services.dataset_compare import dataset_versions_compare

if TYPE_CHECKING:
    from annotation.models import Project

TAG = ["quality"]

# --------------------------------------------------------------------------- response shapes


class AgreementPointOut(serializers.Serializer):
    period = serializers.CharField(help_text="Start of the day or ISO week (UTC), YYYY-MM-DD.")
    units = serializers.IntegerField(help_text="Units whose last annotation fell in this period.")
    alpha = serializers.FloatField(allow_null=True, help_text="Alpha over this period's units.")
    alpha_cumulative = serializers.FloatField(
        allow_null=True, help_text="Alpha over all units up to the end of this period."
    )


class FleissOut(serializers.Serializer):
    kappa = serializers.FloatField(allow_null=True)
    raters_per_unit = serializers.IntegerField()
    units = serializers.IntegerField()


class CohenOut(serializers.Serializer):
    kappa = serializers.FloatField(help_text="Mean Cohen's kappa over the annotator pairs.")
    pairs = serializers.IntegerField(help_text="Annotator pairs with a kappa in the mean.")
    min_shared_units = serializers.IntegerField(
        help_text="Units a pair must share to count (BALLOT_KAPPA_MIN_SHARED_UNITS)."
    )


class AgreementQuestionOut(serializers.Serializer):
    question = serializers.CharField()
    kind = serializers.CharField()
    level = serializers.CharField(allow_null=True, help_text="nominal or interval")
    units = serializers.IntegerField(help_text="Units with at least two human labels.")
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    fleiss_kappa = FleissOut(allow_null=True)
    cohen_kappa = CohenOut(
        allow_null=True,
        help_text="Pairwise and rating questions (ratings as whole points); null without a pair "
        "of annotators sharing enough units.",
    )
    series = AgreementPointOut(many=True)
    note = serializers.CharField(allow_blank=True)


class AgreementOut(serializers.Serializer):
    project = serializers.IntegerField()
    period = serializers.ChoiceField(choices=charts.PERIODS)
    questions = AgreementQuestionOut(many=True)


class ChoiceCountOut(serializers.Serializer):
    label = serializers.CharField(help_text="A, B, ... (the chosen response's position) or tie.")
    human = serializers.IntegerField()
    ai = serializers.IntegerField()


class ValueCountOut(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class RatingValueOut(serializers.Serializer):
    value = serializers.FloatField()
    count = serializers.IntegerField()


class AspectOut(serializers.Serializer):
    aspect = serializers.CharField()
    values = RatingValueOut(many=True)


class LabelQuestionOut(serializers.Serializer):
    question = serializers.CharField()
    kind = serializers.CharField()
    choice = ChoiceCountOut(many=True, required=False, help_text="Pairwise questions.")
    strength = ValueCountOut(many=True, required=False, help_text="Pairwise questions.")
    chosen_position = ValueCountOut(many=True, required=False, help_text="Pairwise questions.")
    aspects = AspectOut(many=True, required=False, help_text="Rating questions.")
    top_position = ValueCountOut(many=True, required=False, help_text="Ranking questions.")


class LabelDistributionsOut(serializers.Serializer):
    project = serializers.IntegerField()
    questions = LabelQuestionOut(many=True)


class CoverageBinOut(serializers.Serializer):
    annotations = serializers.IntegerField()
    items = serializers.IntegerField()


class CoverageOut(serializers.Serializer):
    project = serializers.IntegerField()
    overlap = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Non-gold items.")
    complete = serializers.IntegerField(help_text="Items with at least `overlap` human labels.")
    partial = serializers.IntegerField()
    unlabelled = serializers.IntegerField()
    histogram = CoverageBinOut(many=True)


class ThroughputOut(serializers.Serializer):
    project = serializers.IntegerField()
    days = serializers.ListField(child=serializers.CharField(), help_text="UTC days, YYYY-MM-DD.")
    human = serializers.ListField(child=serializers.IntegerField())
    ai = serializers.ListField(child=serializers.IntegerField())


class AnnotatorRowOut(serializers.Serializer):
    annotator = serializers.CharField(help_text="Pseudonym, stable within the project.")
    username = serializers.CharField(required=False, help_text="Only for the project's admins.")
    judgements = serializers.IntegerField()
    agreement_with_majority = serializers.FloatField(allow_null=True)
    agreement_units = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_items = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    reliability = serializers.FloatField(
        allow_null=True,
        help_text="Reliability in the latest reliability job (vote-weighted over its fits); "
        "null when there is none or the annotator was not in it.",
    )
    flagged = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class AnnotatorsOut(serializers.Serializer):
    project = serializers.IntegerField()
    quality_threshold = serializers.FloatField()
    reliability_job = serializers.IntegerField(
        allow_null=True, help_text="The reliability job the reliabilities come from."
    )
    annotators = AnnotatorRowOut(many=True)


class ProfileValueOut(serializers.Serializer):
    value = serializers.CharField(help_text='A profile answer, "unanswered" or "other/hidden".')
    annotators = serializers.IntegerField()
    judgements = serializers.IntegerField()


class ProfileFieldOut(serializers.Serializer):
    field = serializers.CharField()
    values = ProfileValueOut(many=True)


class ProfileBreakdownOut(serializers.Serializer):
    project = serializers.IntegerField()
    annotators = serializers.IntegerField()
    min_group_size = serializers.IntegerField()
    fields = ProfileFieldOut(many=True)


class CompareVersionOut(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    format = serializers.CharField()
    rows = serializers.IntegerField()


class CompareExampleOut(serializers.Serializer):
    prompt = serializers.CharField()
    before = serializers.CharField(allow_blank=True)
    after = serializers.CharField(allow_blank=True)


class DatasetCompareOut(serializers.Serializer):
    a = CompareVersionOut()
    b = CompareVersionOut()
    key = serializers.CharField(help_text="What identifies a row across versions.")
    rows_added = serializers.IntegerField()
    rows_removed = serializers.IntegerField()
    relabelled = serializers.IntegerField(help_text="Keys in both whose label changed.")
    unchanged = serializers.IntegerField()
    examples = serializers.DictField(child=CompareExampleOut(many=True))


# --------------------------------------------------------------------------- views


def _staff_project(request: Request, project_id: int) -> tuple[Project, str]:
    return project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)


def _agreement(project: Project, role: str, query: QueryDict) -> dict:
    period = query.get("period") or None
    if period is not None and period not in charts.PERIODS:
        raise ValidationFailed(
            f"period must be one of {', '.join(charts.PERIODS)}.", field="period"
        )
    return charts.agreement_over_time(project=project, period=period)


@dataclass(frozen=True)
class Chart:
    """One chart-data endpoint: its path segment, selector, response shape and schema text."""

    slug: str
    select: Callable[[Project, str, QueryDict], dict]
    serializer: type[serializers.Serializer]
    summary: str
    description: str = ""
    parameters: tuple[OpenApiParameter, ...] = ()


CHARTS = (
    Chart(
        "agreement",
        _agreement,
        AgreementOut,
        "Agreement per question, overall and over time (admin, curator)",
        "Krippendorff's alpha, Fleiss' kappa and the mean pairwise Cohen's kappa per question, "
        "from summaries kept on write: fresh right after new labels.",
        (
            OpenApiParameter(
                "period",
                OpenApiTypes.STR,
                enum=list(charts.PERIODS),
                description="Bucket of the series; default: day when the annotations span a "
                "month or less, else week.",
            ),
        ),
    ),
    Chart(
        "label-distributions",
        lambda project, role, query: charts.label_distributions(project=project),
        LabelDistributionsOut,
        "Label distributions per question (admin, curator)",
    ),
    Chart(
        "coverage",
        lambda project, role, query: charts.coverage(project=project),
        CoverageOut,
        "Items by number of human annotations against the overlap (admin, curator)",
    ),
    Chart(
        "throughput",
        lambda project, role, query: charts.throughput(project=project),
        ThroughputOut,
        "Annotations per day, human and AI (admin, curator)",
    ),
    Chart(
        "annotators",
        lambda project, role, query: charts.annotator_table(
            project=project, show_usernames=may_reveal_usernames(role)
        ),
        AnnotatorsOut,
        "The annotator table: judgements, agreement, gold accuracy, time, flags (admin, curator)",
        "Curators see pseudonyms only; the project's admins also get `username`.",
    ),
    Chart(
        "profile-breakdown",
        lambda project, role, query: charts.profile_breakdown(project=project),
        ProfileBreakdownOut,
        "Who labelled, aggregated per profile field; small groups hidden (admin, curator)",
    ),
)


class ChartApi(APIView):
    """The view of every chart in ``CHARTS``: staff scope, the chart's selector, its serializer."""

    chart: Chart

    def get(self, request: Request, project_id: int) -> Response:
        project, role = _staff_project(request, project_id)
        data = self.chart.select(project, role, request.query_params)
        return Response(self.chart.serializer(data).data)

    @classmethod
    def for_chart(cls, chart: Chart) -> type[ChartApi]:
        """A subclass bound to ``chart``, with its own OpenAPI operation (schema per endpoint)."""
        name = "".join(part.title() for part in chart.slug.split("-")) + "ChartApi"
        view = type(name, (cls,), {"chart": chart, "__doc__": chart.summary})
        return extend_schema_view(
            get=extend_schema(
                tags=TAG,
                responses=chart.serializer,
                summary=chart.summary,
                description=chart.description or None,
                parameters=list(chart.parameters),
            )
        )(view)


class DatasetCompareApi(APIView):
    @extend_schema(
        tags=["datasets"],
        responses=DatasetCompareOut,
        parameters=[
            OpenApiParameter("a", OpenApiTypes.INT, required=True, description="Older version id."),
            OpenApiParameter("b", OpenApiTypes.INT, required=True, description="Newer version id."),
        ],
        summary="Compare two dataset versions: rows added, removed, relabelled (admin, curator)",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = _staff_project(request, project_id)
        ids = {}
        for name in ("a", "b"):
            raw = request.query_params.get(name, "")
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                raise ValidationFailed(f"{name} must be a dataset version id.", field=name)
            ids[name] = int(raw)
        result = dataset_versions_compare(project=project, a_id=ids["a"], b_id=ids["b"])
        return Response(DatasetCompareOut(result).data)

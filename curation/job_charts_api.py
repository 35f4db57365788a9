"""Chart data of a job's results page: the importance histogram and kept-against-dropped summaries.

Admins and curators only (an annotator of the project gets 403, anyone else 404),
like every job endpoint.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ValidationFailed
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import job_charts
from curation.reliability import job_reliability_chart
from curation.selectors import job_get_for


class HistogramOut(serializers.Serializer):
    edges = serializers.ListField(
        child=serializers.FloatField(),
        help_text="bins + 1 equal-width bin edges from the lowest to the highest importance.",
    )
    kept = serializers.ListField(
        child=serializers.IntegerField(), help_text="Kept pairs per bin (the last bin is closed)."
    )
    dropped = serializers.ListField(
        child=serializers.IntegerField(), help_text="Dropped pairs per bin."
    )


class BoxOut(serializers.Serializer):
    n = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    q1 = serializers.FloatField(
        allow_null=True, help_text="25th percentile (linear interpolation)."
    )
    median = serializers.FloatField(allow_null=True)
    q3 = serializers.FloatField(
        allow_null=True, help_text="75th percentile (linear interpolation)."
    )
    max = serializers.FloatField(allow_null=True)


class GroupOut(serializers.Serializer):
    metric = serializers.ChoiceField(choices=job_charts.GROUP_METRICS)
    kept = BoxOut()
    dropped = BoxOut()


class JobChartsOut(serializers.Serializer):
    job = serializers.IntegerField()
    kind = serializers.CharField()
    scored = serializers.BooleanField(
        help_text="Whether the kind writes per-pair scores (fifa, suspects); false: no chart data."
    )
    pairs = serializers.IntegerField(help_text="Scored pairs.")
    kept = serializers.IntegerField(help_text="Pairs the selection kept.")
    importance = HistogramOut()
    groups = GroupOut(many=True)


class JobChartsApi(APIView):
    @extend_schema(
        responses=JobChartsOut,
        parameters=[
            OpenApiParameter(
                "bins",
                {"type": "integer", "minimum": 1, "maximum": job_charts.MAX_BINS},
                description=f"Histogram bins, 1 to {job_charts.MAX_BINS} (default {job_charts.DEFAULT_BINS}).",
            )
        ],
        summary="Chart data of a FiFA or suspect-labels job (admin, curator)",
        description=(
            "The importance histogram (kept and dropped pairs counted apart) and, for margin, "
            "quality, diversity and importance, the count, mean and five-number summary of the "
            "kept and of the dropped pairs, computed from the job's per-pair scores."
        ),
        tags=["jobs"],
    )
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        job = job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        raw = request.query_params.get("bins", str(job_charts.DEFAULT_BINS))
        try:
            bins = int(raw)
        except ValueError:
            bins = 0
        if not 1 <= bins <= job_charts.MAX_BINS:
            raise ValidationFailed(
                f"bins must be an integer from 1 to {job_charts.MAX_BINS}.", field="bins"
            )
        return Response(JobChartsOut(job_charts.job_score_charts(job=job, bins=bins)).data)


class ReliabilityAnnotatorOut(serializers.Serializer):
    question = serializers.CharField()
    aspect = serializers.CharField(allow_null=True, help_text="Rating aspect; null: pairwise.")
    annotator = serializers.CharField(help_text="Pseudonym, stable within the project.")
    username = serializers.CharField(required=False, help_text="Only for the project's admins.")
    reliability = serializers.FloatField(
        help_text="Expected accuracy under the fit (Dawid–Skene) or competence (MACE), 0–1."
    )
    votes = serializers.IntegerField()
    agreement_with_majority = serializers.FloatField(
        allow_null=True,
        help_text="Share of the annotator's votes matching the strict majority of the other "
        "votes on the same unit; null when no vote had others to agree with.",
    )


class ReliabilityFitOut(serializers.Serializer):
    question = serializers.CharField()
    aspect = serializers.CharField(allow_null=True)
    annotators = ReliabilityAnnotatorOut(many=True)
    correlation = serializers.FloatField(
        allow_null=True,
        help_text="Pearson correlation of reliability and agreement with the majority over the "
        "annotators that have both (null under three, or when either is constant).",
    )


class JobReliabilityOut(serializers.Serializer):
    job = serializers.IntegerField()
    kind = serializers.CharField()
    fitted = serializers.BooleanField(
        help_text="Whether this is a succeeded reliability job; false: no fits."
    )
    model = serializers.CharField(allow_null=True)
    fits = ReliabilityFitOut(many=True)


class JobReliabilityApi(APIView):
    @extend_schema(
        responses=JobReliabilityOut,
        summary="Annotator reliabilities of a reliability job (admin, curator)",
        description=(
            "Per fit (pairwise question or rating aspect): every annotator's reliability, "
            "votes and agreement with the majority of the others, the data of the "
            "reliability-against-agreement scatter. Curators see pseudonyms only; the "
            "project's admins also get `username`."
        ),
        tags=["jobs"],
    )
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        _, role = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        job = job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        data = job_reliability_chart(job=job, reveal_usernames=may_reveal_usernames(role))
        return Response(JobReliabilityOut(data).data)

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
from curation import job_charts
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

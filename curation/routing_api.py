"""Routing API: the budget curve and route counts of the last (or a given) routing job, its
per-item decisions with their reasons, and the action that sends AI-routed items to the judge.

Admins and curators only (an annotator of the project gets 403, anyone else 404).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import NotFound, ValidationFailed, validated
from annotation.pagination import paginate
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import selectors
from curation.routing import latest_routing_job, routing_decision_list, routing_summary
from curation.serializers import JobOut
from curation.services.routing import routing_send_to_judge

TAG = ["routing"]
ROUTES = ("human", "ai")


class CurvePointOut(serializers.Serializer):
    strategy = serializers.CharField(help_text="random, gain, error (or prior).")
    budget = serializers.FloatField(help_text="Share of the items routed to humans.")
    label_accuracy = serializers.FloatField(
        allow_null=True,
        help_text="Accuracy of the mixed labels against the human labels, cross-fitted, on "
        "the items with both a human and a judge label.",
    )


class RoutingJobOut(serializers.Serializer):
    id = serializers.IntegerField()
    strategy = serializers.CharField(allow_null=True)
    used = serializers.CharField(allow_null=True, help_text="The strategy that ran.")
    fallback = serializers.CharField(
        allow_null=True, help_text="Why the prior replaced a learned strategy, if it did."
    )
    budget = serializers.FloatField(allow_null=True)
    judge = serializers.CharField(allow_null=True)
    labelled = serializers.IntegerField(
        allow_null=True, help_text="Items with both a human and a judge label."
    )
    finished_at = serializers.DateTimeField(allow_null=True)


class JudgeCountOut(serializers.Serializer):
    judge = serializers.CharField()
    labels = serializers.IntegerField()


class RouteCountsOut(serializers.Serializer):
    human = serializers.IntegerField(required=False)
    ai = serializers.IntegerField(required=False)


class RoutingSummaryOut(serializers.Serializer):
    job = RoutingJobOut(allow_null=True)
    curve = CurvePointOut(many=True)
    counts = RouteCountsOut()
    judges = JudgeCountOut(many=True)


class DecisionOut(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    title = serializers.CharField(source="item.title")
    external_id = serializers.CharField(source="item.external_id")
    route = serializers.CharField()
    rank = serializers.IntegerField()
    score = serializers.FloatField()
    score_kind = serializers.CharField()
    reason = serializers.SerializerMethodField()
    features = serializers.JSONField(help_text="Instance features and judge signals.")

    def get_reason(self, decision) -> str:
        return decision.features.get("reason", "")


class SendToJudgeIn(serializers.Serializer):
    job = serializers.IntegerField(help_text="The routing job whose AI-routed items to label.")
    judge = serializers.JSONField(
        required=False, help_text="The judge (as the label-ai job's judge parameter takes it)."
    )


def _job_param(request: Request, project_id: int):
    project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
    raw = request.query_params.get("job")
    if raw in (None, ""):
        return project, None
    if not raw.isdigit():
        raise ValidationFailed("job must be a job id.", field="job")
    job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=int(raw))
    if job.kind != "route":
        raise ValidationFailed("job must be a routing job.", field="job")
    return project, job


JOB_PARAMETER = OpenApiParameter(
    "job", int, description="A routing job's id; the project's last succeeded one by default."
)


class RoutingSummaryApi(APIView):
    @extend_schema(
        tags=TAG,
        parameters=[JOB_PARAMETER],
        responses=RoutingSummaryOut,
        summary="Budget curve and route counts of a routing job (chart data)",
        description=(
            "The routing page's chart: for each strategy and for random, the accuracy of the "
            "mixed labels at each human budget (0–100%), cross-fitted on the items that carry "
            "both a human and a judge label. job is null before the first routing job."
        ),
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, job = _job_param(request, project_id)
        return Response(RoutingSummaryOut(routing_summary(project=project, job=job)).data)


class RoutingDecisionListApi(APIView):
    @extend_schema(
        tags=TAG,
        parameters=[
            JOB_PARAMETER,
            OpenApiParameter("route", str, enum=ROUTES, description="Only this route."),
        ],
        responses=DecisionOut(many=True),
        summary="Per-item routes of a routing job, with their reasons, in rank order",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, job = _job_param(request, project_id)
        route = request.query_params.get("route") or None
        if route is not None and route not in ROUTES:
            raise ValidationFailed("route must be human or ai.", field="route")
        job = job or latest_routing_job(project=project)
        if job is None:
            raise NotFound("The project has no finished routing job yet.")
        return paginate(
            self,
            request,
            routing_decision_list(job=job, route=route),
            DecisionOut,
            ordering=("rank", "id"),
        )


class RoutingSendToJudgeApi(APIView):
    @extend_schema(
        tags=TAG,
        request=SendToJudgeIn,
        responses={202: JobOut},
        summary="Send the items a routing job gave the judge to the judge (a label-ai job)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(SendToJudgeIn, request.data)
        job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=data["job"])
        labelling = routing_send_to_judge(job=job, user=request.user, judge=data.get("judge"))
        return Response(JobOut(labelling).data, status=status.HTTP_202_ACCEPTED)

"""REST API for a project's LM judges: admins configure them, curators read and test them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ValidationFailed, validated
from annotation.pagination import paginate
from annotation.selectors import ADMIN_ONLY, STAFF_ROLES, project_get_for
from curation.judges import selectors, serializers, services

BOTH_ORDERS = (
    "Each pair is judged twice, once in each order of its two responses; agreeing orders give "
    "the label, disagreeing ones a tie or an abstention (on_disagreement). The API key is "
    "stored encrypted and never returned."
)


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationFailed("The body must be a JSON object.", field=None)
    return dict(request.data)


class JudgeListApi(APIView):
    @extend_schema(
        responses=serializers.JudgeOut(many=True),
        summary="List the project's judges (admin, curator)",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        queryset = selectors.judge_list_for(project=project).prefetch_related("versions")
        return paginate(self, request, queryset, serializers.JudgeOut)

    @extend_schema(
        request=serializers.JudgeIn,
        responses={201: serializers.JudgeOut},
        summary="Create a judge (admin)",
        description=BOTH_ORDERS,
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=ADMIN_ONLY)
        judge = services.judge_create(project=project, user=request.user, data=_body(request))
        return Response(serializers.JudgeOut(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    @extend_schema(responses=serializers.JudgeOut, summary="Read a judge and its versions")
    def get(self, request: Request, project_id: int, judge_id: int) -> Response:
        judge = selectors.judge_get_for(user=request.user, project_id=project_id, judge_id=judge_id)
        return Response(serializers.JudgeOut(judge).data)

    @extend_schema(
        request=serializers.JudgeIn(partial=True),
        responses=serializers.JudgeOut,
        summary="Change a judge (admin); a changed prompt, model or URL makes a new version on the next run",
    )
    def patch(self, request: Request, project_id: int, judge_id: int) -> Response:
        judge = selectors.judge_get_for(
            user=request.user, project_id=project_id, judge_id=judge_id, roles=ADMIN_ONLY
        )
        judge = services.judge_update(judge=judge, data=_body(request))
        return Response(serializers.JudgeOut(judge).data)

    @extend_schema(responses={204: None}, summary="Delete a judge (admin); its AI annotations stay")
    def delete(self, request: Request, project_id: int, judge_id: int) -> Response:
        judge = selectors.judge_get_for(
            user=request.user, project_id=project_id, judge_id=judge_id, roles=ADMIN_ONLY
        )
        services.judge_delete(judge=judge)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JudgeTestApi(APIView):
    @extend_schema(
        request=serializers.JudgeTestIn,
        responses=serializers.JudgeTestOut,
        summary="Judge one item now and show both orders' verdicts and raw outputs (nothing stored)",
        description=BOTH_ORDERS
        + " A test keeps to interactive limits whatever the judge's settings: 20 s in all, at "
        "most 10 s per request and one retry; `error` says why no usable verdict came back "
        "(timed out, the HTTP status, an unparseable answer).",
    )
    def post(self, request: Request, project_id: int, judge_id: int) -> Response:
        judge = selectors.judge_get_for(user=request.user, project_id=project_id, judge_id=judge_id)
        data = validated(serializers.JudgeTestIn, request.data)
        item = selectors.judge_item_get(judge=judge, item_id=data["item"])
        return Response(services.judge_test(judge=judge, item=item))


class JudgeStatsApi(APIView):
    @extend_schema(
        responses=serializers.JudgeStatsOut,
        summary="A judge's record per version: agreement with human labels, position consistency",
        description=(
            "Data of the judges page's chart. position_consistency: share of pairwise verdicts "
            "whose two orders agreed. human_agreement: share of the judge's pairwise labels "
            "equal to the human majority of the item (items without a human majority left out)."
        ),
    )
    def get(self, request: Request, project_id: int, judge_id: int) -> Response:
        judge = selectors.judge_get_for(user=request.user, project_id=project_id, judge_id=judge_id)
        return Response(selectors.judge_stats(judge=judge))

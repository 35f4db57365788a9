"""REST API for curation: jobs, per-pair scores, dataset versions, agreement and quality."""

from __future__ import annotations

from django.http import FileResponse, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import NotFound, ValidationFailed, validated
from annotation.pagination import paginate
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import selectors, serializers
from curation.jobs.kinds import export
from curation.jobs.registry import kinds_describe
from curation.services.jobs import job_cancel, job_create, job_retry
from curation.storage import absolute

SCORE_ORDERS = {
    "importance": ("-importance", "id"),
    "suspect_confidence": ("-suspect_confidence", "id"),
    "margin": ("margin", "id"),
}


class JobKindListApi(APIView):
    @extend_schema(
        responses=serializers.JobKindOut(many=True),
        summary="List the job kinds and their parameters",
        description=(
            "Every kind with its queue, whether it fans out into shards, the rows it writes and "
            "its parameters (type, bounds, default, help): what a launch form needs. Kinds "
            "declared for what comes next are listed with available=false."
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(serializers.JobKindOut(kinds_describe(), many=True).data)


class JobListApi(APIView):
    @extend_schema(responses=serializers.JobOut(many=True), summary="List jobs (admin, curator)")
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        jobs = selectors.job_list_for(project=project, kind=request.query_params.get("kind"))
        return paginate(self, request, jobs, serializers.JobOut)

    @extend_schema(
        request=serializers.JobIn,
        responses={202: serializers.JobOut},
        summary="Launch a job (admin, curator)",
        description=(
            "params are exactly the kind's parameters (GET /api/v1/job-kinds/ lists them with "
            "types, defaults and help); an unknown key is a 400 naming it and the kind. Returns "
            "202 with the queued job, its params with defaults filled in; poll it for progress."
        ),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(serializers.JobIn, request.data)
        job = job_create(
            project=project, kind=data["kind"], params=data["params"], user=request.user
        )
        return Response(serializers.JobOut(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    @extend_schema(responses=serializers.JobOut, summary="Read a job and its progress")
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        return Response(
            serializers.JobOut(
                selectors.job_get_for(user=request.user, project_id=project_id, job_id=job_id)
            ).data
        )


class JobCancelApi(APIView):
    @extend_schema(
        request=None, responses=serializers.JobOut, summary="Cancel a queued or running job"
    )
    def post(self, request: Request, project_id: int, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        return Response(serializers.JobOut(job_cancel(job=job)).data)


class JobRetryApi(APIView):
    @extend_schema(
        request=None, responses=serializers.JobOut, summary="Queue a failed or cancelled job again"
    )
    def post(self, request: Request, project_id: int, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        return Response(
            serializers.JobOut(job_retry(job=job)).data, status=status.HTTP_202_ACCEPTED
        )


class JobScoresApi(APIView):
    @extend_schema(
        responses=serializers.PairScoreOut(many=True),
        parameters=[
            OpenApiParameter("kept", OpenApiTypes.BOOL),
            OpenApiParameter("suspect", OpenApiTypes.BOOL),
            OpenApiParameter("order", OpenApiTypes.STR, enum=list(SCORE_ORDERS)),
        ],
        summary="Per-pair scores of a FiFA or suspect-label job",
    )
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        flags = {}
        for flag in ("kept", "suspect"):
            value = request.query_params.get(flag)
            flags[flag] = None if value is None else value.lower() in ("1", "true", "yes")
        scores = selectors.pair_score_list_for(job=job, **flags)
        order = request.query_params.get("order", "importance")
        return paginate(
            self,
            request,
            scores,
            serializers.PairScoreOut,
            ordering=SCORE_ORDERS.get(order, SCORE_ORDERS["importance"]),
        )


class DatasetListApi(APIView):
    @extend_schema(
        responses=serializers.DatasetVersionOut(many=True),
        summary="List published dataset versions",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return paginate(
            self,
            request,
            selectors.dataset_version_list_for(project=project),
            serializers.DatasetVersionOut,
        )

    @extend_schema(
        request=export.SPEC.params.serializer(),
        responses={202: serializers.JobOut},
        summary="Export a new dataset version (runs as an export job)",
        description="The body is the export job's params ({} for the defaults); an unknown key "
        "is a 400 naming it.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = request.data
        if not isinstance(data, dict):
            # [], "x", 12 or null must not quietly become a default export.
            raise ValidationFailed(
                "The body must be a JSON object of export parameters ({} for the defaults).",
                field="body",
            )
        params = data.dict() if isinstance(data, QueryDict) else dict(data)
        job = job_create(project=project, kind=export.SPEC.kind, params=params, user=request.user)
        return Response(serializers.JobOut(job).data, status=status.HTTP_202_ACCEPTED)


class DatasetDetailApi(APIView):
    @extend_schema(
        responses=serializers.DatasetVersionOut, summary="Read a dataset version and its manifest"
    )
    def get(self, request: Request, project_id: int, version_id: int) -> Response:
        version = selectors.dataset_version_get_for(
            user=request.user, project_id=project_id, version_id=version_id
        )
        return Response(serializers.DatasetVersionOut(version).data)


class DatasetFileApi(APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download one file of a dataset version",
    )
    def get(self, request: Request, project_id: int, version_id: int, file_path: str):
        version = selectors.dataset_version_get_for(
            user=request.user, project_id=project_id, version_id=version_id
        )
        listed = {entry["path"] for entry in version.manifest.get("files") or []}
        if file_path not in listed and file_path != "manifest.json":
            raise NotFound("No such file in this dataset version.")
        path = absolute(f"{version.path}/{file_path}")
        if not path.is_file():
            raise NotFound("The file is missing from storage.")
        # One documented type for every file (a .json manifest too): it is a download, and a
        # client reads the format from the manifest, not from a guess made on the file name.
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=path.name,
            content_type="application/octet-stream",
        )


class QualityApi(APIView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT, summary="Agreement per question and quality per annotator"
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, role = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return Response(
            selectors.project_quality(project=project, show_usernames=may_reveal_usernames(role))
        )

"""REST API for curation: jobs, per-pair scores, dataset versions, agreement and quality."""

from __future__ import annotations

from django.http import FileResponse, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import _paginate, _validated
from annotation.errors import NotFound, ValidationFailed
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES, project_get_for
from curation import selectors, serializers
from curation.models import DatasetVersion, JobKind
from curation.services import job_cancel, job_create, job_retry
from curation.storage import absolute


class JobListApi(APIView):
    @extend_schema(responses=serializers.JobOut(many=True), summary="List jobs (admin, curator)")
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        jobs = selectors.job_list_for(project=project).prefetch_related("artifacts")
        kind = request.query_params.get("kind")
        if kind:
            jobs = jobs.filter(kind=kind)
        return _paginate(self, request, jobs, serializers.JobOut)

    @extend_schema(
        request=serializers.JobIn,
        responses={202: serializers.JobOut},
        summary="Launch a job (admin, curator)",
        description=(
            f"kind: one of {', '.join(k for k in JobKind.values if k not in ('route', 'label-ai', 'explain'))}. "
            "params depend on the kind; see the README's curation section. Returns 202 with the queued job; "
            "poll it for progress."
        ),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = _validated(serializers.JobIn, request.data)
        job = job_create(
            project=project, kind=data["kind"], params=data["params"], user=request.user
        )
        job.refresh_from_db()
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
            OpenApiParameter(
                "order", OpenApiTypes.STR, enum=["importance", "suspect_confidence", "margin"]
            ),
        ],
        summary="Per-pair scores of a FiFA or suspect-label job",
    )
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, project_id=project_id, job_id=job_id)
        scores = job.pair_scores.all()
        for flag in ("kept", "suspect"):
            value = request.query_params.get(flag)
            if value is not None:
                scores = scores.filter(**{flag: value.lower() in ("1", "true", "yes")})
        order = request.query_params.get("order", "importance")
        if order not in ("importance", "suspect_confidence", "margin"):
            order = "importance"
        from rest_framework.pagination import CursorPagination

        paginator = CursorPagination()
        paginator.ordering = (f"-{order}", "id") if order != "margin" else ("margin", "id")
        paginator.page_size = 100
        page = paginator.paginate_queryset(scores, request, view=self)
        return paginator.get_paginated_response(serializers.PairScoreOut(page, many=True).data)


class DatasetListApi(APIView):
    @extend_schema(
        responses=serializers.DatasetVersionOut(many=True),
        summary="List published dataset versions",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return _paginate(
            self,
            request,
            DatasetVersion.objects.filter(project=project),
            serializers.DatasetVersionOut,
        )

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={202: serializers.JobOut},
        summary="Export a new dataset version (runs as an export job)",
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
        job = job_create(project=project, kind=JobKind.EXPORT, params=params, user=request.user)
        job.refresh_from_db()
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
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


class QualityApi(APIView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT, summary="Agreement per question and quality per annotator"
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, role = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return Response(
            selectors.project_quality(project=project, show_usernames=may_reveal_usernames(role))
        )

from __future__ import annotations

from django.urls import path

from curation import api

urlpatterns = [
    path("projects/<int:project_id>/jobs/", api.JobListApi.as_view(), name="job-list"),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/",
        api.JobDetailApi.as_view(),
        name="job-detail",
    ),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/cancel/",
        api.JobCancelApi.as_view(),
        name="job-cancel",
    ),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/retry/",
        api.JobRetryApi.as_view(),
        name="job-retry",
    ),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/scores/",
        api.JobScoresApi.as_view(),
        name="job-scores",
    ),
    path("projects/<int:project_id>/datasets/", api.DatasetListApi.as_view(), name="dataset-list"),
    path(
        "projects/<int:project_id>/datasets/<int:version_id>/",
        api.DatasetDetailApi.as_view(),
        name="dataset-detail",
    ),
    path(
        "projects/<int:project_id>/datasets/<int:version_id>/files/<path:file_path>",
        api.DatasetFileApi.as_view(),
        name="dataset-file",
    ),
    path("projects/<int:project_id>/quality/", api.QualityApi.as_view(), name="quality"),
]

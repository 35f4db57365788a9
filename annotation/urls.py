from __future__ import annotations

from django.urls import path

from annotation import api

urlpatterns = [
    path("auth/token/", api.TokenApi.as_view(), name="token-create"),
    path("projects/", api.ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:project_id>/", api.ProjectDetailApi.as_view(), name="project-detail"),
    path(
        "projects/<int:project_id>/questions/", api.QuestionListApi.as_view(), name="question-list"
    ),
    path(
        "projects/<int:project_id>/questions/<int:question_id>/",
        api.QuestionDetailApi.as_view(),
        name="question-detail",
    ),
    path("projects/<int:project_id>/items/", api.ItemListApi.as_view(), name="item-list"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/",
        api.ItemDetailApi.as_view(),
        name="item-detail",
    ),
    path(
        "projects/<int:project_id>/items/<int:item_id>/annotations/",
        api.ItemAnnotationsApi.as_view(),
        name="item-annotations",
    ),
    path("projects/<int:project_id>/import/", api.ImportApi.as_view(), name="item-import"),
    path(
        "projects/<int:project_id>/annotations/",
        api.AnnotationListApi.as_view(),
        name="annotation-list",
    ),
    path("projects/<int:project_id>/next/", api.NextApi.as_view(), name="next"),
    path(
        "projects/<int:project_id>/memberships/",
        api.MembershipListApi.as_view(),
        name="membership-list",
    ),
    path(
        "projects/<int:project_id>/memberships/<int:membership_id>/",
        api.MembershipDetailApi.as_view(),
        name="membership-detail",
    ),
    path(
        "projects/<int:project_id>/profiles/",
        api.ProjectProfilesApi.as_view(),
        name="project-profiles",
    ),
    path("assignments/", api.AssignmentListApi.as_view(), name="assignment-list"),
    path(
        "assignments/<int:assignment_id>/",
        api.AssignmentDetailApi.as_view(),
        name="assignment-detail",
    ),
    path(
        "assignments/<int:assignment_id>/submit/", api.SubmitApi.as_view(), name="assignment-submit"
    ),
    path("assignments/<int:assignment_id>/skip/", api.SkipApi.as_view(), name="assignment-skip"),
    path("profile/", api.MyProfileApi.as_view(), name="my-profile"),
]

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import (
    views,
    workspace_datasets,
    workspace_explanations,
    workspace_explorer,
    workspace_jobs,
    workspace_judges,
    workspace_quality,
    workspace_review,
    workspace_routing,
    workspace_setup,
    workspace_webhooks,
)

app_name = "frontend"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="frontend/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("onboarding/", views.onboarding, name="onboarding"),
    path("profile/", views.profile, name="profile"),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/label/next/", views.label_next, name="label-next"),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/submit/",
        views.label_submit,
        name="label-submit",
    ),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/ahead/",
        views.label_ahead,
        name="label-ahead",
    ),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/skip/",
        views.label_skip,
        name="label-skip",
    ),
    path("projects/new/", workspace_setup.project_create, name="project-create"),
    path(
        "projects/instructions-preview/",
        workspace_setup.instructions_preview,
        name="instructions-preview",
    ),
    path("projects/label-preview/", workspace_setup.label_preview, name="label-preview"),
    path(
        "projects/<int:project_id>/settings/",
        workspace_setup.project_settings,
        name="project-settings",
    ),
    path(
        "projects/<int:project_id>/import/", workspace_setup.project_import, name="project-import"
    ),
    path(
        "projects/<int:project_id>/import/preview/",
        workspace_setup.project_import_preview,
        name="project-import-preview",
    ),
    path(
        "projects/<int:project_id>/import/run/",
        workspace_setup.project_import_run,
        name="project-import-run",
    ),
    path(
        "projects/<int:project_id>/members/",
        workspace_setup.project_members,
        name="project-members",
    ),
    path("projects/<int:project_id>/items/", workspace_explorer.item_list, name="item-list"),
    path("projects/<int:project_id>/items/bulk/", workspace_explorer.item_bulk, name="item-bulk"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/similar/",
        workspace_explorer.item_similar,
        name="item-similar",
    ),
    path("projects/<int:project_id>/items/<int:item_id>/", views.item_detail, name="item-detail"),
    path("projects/<int:project_id>/jobs/", workspace_jobs.job_list, name="job-list"),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/",
        workspace_jobs.job_detail,
        name="job-detail",
    ),
    path("projects/<int:project_id>/quality/", workspace_quality.quality, name="quality"),
    path("projects/<int:project_id>/routing/", workspace_routing.routing, name="routing"),
    path(
        "projects/<int:project_id>/routing/send/",
        workspace_routing.routing_send,
        name="routing-send",
    ),
    path(
        "projects/<int:project_id>/explanations/",
        workspace_explanations.explanation_page,
        name="explanations",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/",
        workspace_explanations.feature_page,
        name="explanation-feature",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/review/",
        workspace_explanations.feature_review,
        name="explanation-feature-review",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/export/",
        workspace_explanations.feature_export,
        name="explanation-feature-export",
    ),
    path("projects/<int:project_id>/judges/", workspace_judges.judge_list, name="judge-list"),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/edit/",
        workspace_judges.judge_edit,
        name="judge-edit",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/test/",
        workspace_judges.judge_test,
        name="judge-test",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/label/",
        workspace_judges.judge_label,
        name="judge-label",
    ),
    path("projects/<int:project_id>/review/", workspace_review.review_list, name="review-list"),
    path(
        "projects/<int:project_id>/review/from-agreement/",
        workspace_review.review_from_agreement,
        name="review-from-agreement",
    ),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/review/",
        workspace_review.review_from_job,
        name="review-from-job",
    ),
    path(
        "projects/<int:project_id>/review/<int:entry_id>/",
        workspace_review.review_detail,
        name="review-detail",
    ),
    path(
        "projects/<int:project_id>/review/<int:entry_id>/message/",
        workspace_review.review_message,
        name="review-message",
    ),
    path("messages/<int:message_id>/read/", views.message_read, name="message-read"),
    path(
        "projects/<int:project_id>/datasets/",
        workspace_datasets.dataset_list,
        name="dataset-list",
    ),
    path(
        "projects/<int:project_id>/datasets/compare/",
        workspace_datasets.dataset_compare,
        name="dataset-compare",
    ),
    path(
        "projects/<int:project_id>/webhooks/",
        workspace_webhooks.webhook_list,
        name="webhook-list",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/test/",
        workspace_webhooks.webhook_send_test,
        name="webhook-send-test",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/toggle/",
        workspace_webhooks.webhook_toggle,
        name="webhook-toggle",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/delete/",
        workspace_webhooks.webhook_delete,
        name="webhook-delete",
    ),
]

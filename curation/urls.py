from __future__ import annotations

from django.urls import path

from curation import api, charts_api, explorer_api, job_charts_api, routing_api
from curation.explanations import api as explanations_api
from curation.judges import api as judges_api
from curation.review import api as review_api
from curation.webhooks import api as webhooks_api

urlpatterns = [
    path("job-kinds/", api.JobKindListApi.as_view(), name="job-kind-list"),
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
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/charts/",
        job_charts_api.JobChartsApi.as_view(),
        name="job-charts",
    ),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/reliability/",
        job_charts_api.JobReliabilityApi.as_view(),
        name="job-reliability",
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
    path("projects/<int:project_id>/explore/", explorer_api.ExploreApi.as_view(), name="explore"),
    path(
        "projects/<int:project_id>/explore/bulk/",
        explorer_api.ExploreBulkApi.as_view(),
        name="explore-bulk",
    ),
    path(
        "projects/<int:project_id>/webhooks/",
        webhooks_api.WebhookListApi.as_view(),
        name="webhook-list",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/",
        webhooks_api.WebhookDetailApi.as_view(),
        name="webhook-detail",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/test/",
        webhooks_api.WebhookTestApi.as_view(),
        name="webhook-test",
    ),
    path(
        "projects/<int:project_id>/webhooks/<int:webhook_id>/deliveries/",
        webhooks_api.WebhookDeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path("projects/<int:project_id>/judges/", judges_api.JudgeListApi.as_view(), name="judge-list"),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/",
        judges_api.JudgeDetailApi.as_view(),
        name="judge-detail",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/test/",
        judges_api.JudgeTestApi.as_view(),
        name="judge-test",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/stats/",
        judges_api.JudgeStatsApi.as_view(),
        name="judge-stats",
    ),
    path(
        "projects/<int:project_id>/review/", review_api.ReviewListApi.as_view(), name="review-list"
    ),
    path(
        "projects/<int:project_id>/review/from-agreement/",
        review_api.ReviewFromAgreementApi.as_view(),
        name="review-from-agreement",
    ),
    path(
        "projects/<int:project_id>/review/from-job/",
        review_api.ReviewFromJobApi.as_view(),
        name="review-from-job",
    ),
    path(
        "projects/<int:project_id>/review/<int:entry_id>/",
        review_api.ReviewDetailApi.as_view(),
        name="review-detail",
    ),
    path(
        "projects/<int:project_id>/review/<int:entry_id>/resolve/",
        review_api.ReviewResolveApi.as_view(),
        name="review-resolve",
    ),
    path(
        "projects/<int:project_id>/review/<int:entry_id>/messages/",
        review_api.ReviewMessageApi.as_view(),
        name="review-messages",
    ),
    # Chart data of the quality and datasets pages (curation/charts_api.py).
    *(
        path(
            f"projects/<int:project_id>/quality/{chart.slug}/",
            charts_api.ChartApi.for_chart(chart).as_view(),
            name=f"quality-{chart.slug}",
        )
        for chart in charts_api.CHARTS
    ),
    path(
        "projects/<int:project_id>/datasets/compare/",
        charts_api.DatasetCompareApi.as_view(),
        name="dataset-compare",
    ),
    # The routing page (curation/routing_api.py).
    path(
        "projects/<int:project_id>/routing/",
        routing_api.RoutingSummaryApi.as_view(),
        name="routing-summary",
    ),
    path(
        "projects/<int:project_id>/routing/decisions/",
        routing_api.RoutingDecisionListApi.as_view(),
        name="routing-decisions",
    ),
    path(
        "projects/<int:project_id>/routing/send-to-judge/",
        routing_api.RoutingSendToJudgeApi.as_view(),
        name="routing-send-to-judge",
    ),
    # The explanations page (curation/explanations/api.py).
    path(
        "projects/<int:project_id>/explanations/",
        explanations_api.ExplanationListApi.as_view(),
        name="explanation-list",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/",
        explanations_api.ExplanationDetailApi.as_view(),
        name="explanation-detail",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/",
        explanations_api.FeatureDetailApi.as_view(),
        name="explanation-feature",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/groups/",
        explanations_api.FeatureGroupsApi.as_view(),
        name="explanation-feature-groups",
    ),
    path(
        "projects/<int:project_id>/explanations/<int:job_id>/features/<int:index>/review/",
        explanations_api.FeatureReviewApi.as_view(),
        name="explanation-feature-review",
    ),
]

"""Explanations as an API: the list, one explanation with its ranked features, one feature
with its examples (texts side by side, n-gram spans as offsets) and its group effects, and
the action that puts a feature's most active pairs in the review queue.

Admins and curators only: an annotator of the project gets 403, anyone else 404.
Explanations are keyed by the job that wrote them.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import validated
from annotation.pagination import paginate
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.explanations.selectors import (
    explanation_alpha,
    explanation_get_for,
    explanation_list_for,
    feature_description,
    feature_examples,
    feature_get,
    feature_list,
)
from curation.explanations.services import review_entries_from_feature

TAG = ["explanations"]


class FeatureOut(serializers.Serializer):
    index = serializers.IntegerField(help_text="The feature's column in the SAE.")
    rank = serializers.IntegerField(help_text="1 for the largest |coefficient|.")
    name = serializers.CharField(help_text="The judge's name, kept only if it held up.")
    proposed_name = serializers.CharField(help_text="What the judge proposed, kept or not.")
    description = serializers.SerializerMethodField()
    coef = serializers.FloatField(
        allow_null=True,
        help_text="Standardised coefficient on the label (controlling for length): positive "
        "when the side with more of the feature tends to win.",
    )
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_bonferroni = serializers.FloatField(allow_null=True)
    significant = serializers.SerializerMethodField()
    prevalence = serializers.FloatField(help_text="Share of pairs where it is active.")
    fidelity_r = serializers.FloatField(allow_null=True)
    fidelity_p = serializers.FloatField(allow_null=True)
    ngrams_high = serializers.JSONField(help_text='[{"ngram", "z"}]: more on the high side.')
    ngrams_low = serializers.JSONField(help_text='[{"ngram", "z"}]: more on the low side.')

    def get_description(self, feature) -> str:
        return feature_description(feature)

    def get_significant(self, feature) -> bool:
        alpha = self.context.get("alpha", 0.05)
        return feature.p_bonferroni is not None and feature.p_bonferroni < alpha


class ExplanationSummaryOut(serializers.Serializer):
    job = serializers.IntegerField(source="job_id")
    created_at = serializers.DateTimeField()
    counts = serializers.JSONField(help_text="Pairs, judgements, annotators, held-out pairs.")
    probes = serializers.JSONField(
        help_text="Held-out AUCs (length only, full, sparse 5 and 10) and share_explained."
    )


class ExplanationOut(ExplanationSummaryOut):
    history = serializers.JSONField(help_text="Per epoch: train and held-out NMSE.")
    groups = serializers.JSONField(help_text="Per annotator group: its sparse probe's features.")
    config = serializers.JSONField()
    features = serializers.SerializerMethodField()

    def get_features(self, explanation) -> list[dict]:
        return FeatureOut(
            feature_list(explanation=explanation),
            many=True,
            context={"alpha": explanation_alpha(explanation)},
        ).data


class SpanOut(serializers.Serializer):
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    side = serializers.ChoiceField(choices=["high", "low"])


class SideOut(serializers.Serializer):
    response = serializers.IntegerField()
    side = serializers.ChoiceField(choices=["A", "B"])
    text = serializers.CharField()
    preferred = serializers.BooleanField()
    spans = SpanOut(many=True, help_text="Character offsets of the feature's n-grams.")


class ExampleOut(serializers.Serializer):
    pair_id = serializers.CharField()
    item = serializers.IntegerField()
    external_id = serializers.CharField()
    title = serializers.CharField()
    question = serializers.CharField()
    activation = serializers.FloatField()
    swapped = serializers.BooleanField(help_text="B is on the left: the activation is negative.")
    prompt = serializers.CharField()
    left = SideOut(help_text="The side with more of the feature.")
    right = SideOut()


class GroupEffectOut(serializers.Serializer):
    field = serializers.CharField()
    value = serializers.CharField()
    coef = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    n_annotators = serializers.IntegerField()
    n_judgements = serializers.IntegerField()
    interaction_p = serializers.FloatField(allow_null=True)


class FeatureDetailOut(FeatureOut):
    stats = serializers.JSONField(help_text="Length and format rates on each side.")
    group_effects = GroupEffectOut(many=True)
    examples = serializers.SerializerMethodField()

    def get_examples(self, feature) -> list[dict]:
        return ExampleOut(feature_examples(feature=feature), many=True).data


class GroupEffectsOut(serializers.Serializer):
    feature = serializers.IntegerField()
    coef = serializers.FloatField(allow_null=True, help_text="The pooled coefficient.")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    group_effects = GroupEffectOut(many=True)


class FeatureReviewIn(serializers.Serializer):
    top = serializers.IntegerField(
        required=False, allow_null=True, help_text="The N pairs where the feature is most active."
    )
    threshold = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Every pair whose activation is at least this large (with top: the first N).",
    )


class FeatureReviewOut(serializers.Serializer):
    pairs = serializers.IntegerField(help_text="Pairs selected.")
    items = serializers.IntegerField(help_text="Their items that may be reviewed.")
    added = serializers.IntegerField(help_text="Entries new in the queue (0 on a repeat).")


class ExplanationListApi(APIView):
    @extend_schema(
        tags=TAG,
        responses=ExplanationSummaryOut(many=True),
        summary="The project's explanations, newest first (admin, curator)",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return paginate(self, request, explanation_list_for(project=project), ExplanationSummaryOut)


class ExplanationDetailApi(APIView):
    @extend_schema(
        tags=TAG,
        responses=ExplanationOut,
        summary="One explanation (by its job) with its features ranked (admin, curator)",
    )
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        explanation = explanation_get_for(user=request.user, project_id=project_id, job_id=job_id)
        return Response(ExplanationOut(explanation).data)


class FeatureDetailApi(APIView):
    @extend_schema(
        tags=TAG,
        responses=FeatureDetailOut,
        summary="One feature with its examples, n-gram spans and group effects (admin, curator)",
        description=(
            "Each example reads from the side with more of the feature (left): A, or B when "
            "`swapped`. Spans are character offsets into each side's text."
        ),
    )
    def get(self, request: Request, project_id: int, job_id: int, index: int) -> Response:
        explanation = explanation_get_for(user=request.user, project_id=project_id, job_id=job_id)
        feature = feature_get(explanation=explanation, index=index)
        return Response(
            FeatureDetailOut(feature, context={"alpha": explanation_alpha(explanation)}).data
        )


class FeatureGroupsApi(APIView):
    @extend_schema(
        tags=TAG,
        responses=GroupEffectsOut,
        summary="A feature's effect within each annotator group (admin, curator)",
        description=(
            "Groups below the job's minimum size (annotators and judgements) are left out. "
            "interaction_p tests the group's coefficient against the other annotators'."
        ),
    )
    def get(self, request: Request, project_id: int, job_id: int, index: int) -> Response:
        explanation = explanation_get_for(user=request.user, project_id=project_id, job_id=job_id)
        feature = feature_get(explanation=explanation, index=index)
        return Response(
            GroupEffectsOut(
                {
                    "feature": feature.index,
                    "coef": feature.coef,
                    "ci_low": feature.ci_low,
                    "ci_high": feature.ci_high,
                    "group_effects": feature.group_effects,
                }
            ).data
        )


class FeatureReviewApi(APIView):
    @extend_schema(
        tags=TAG,
        request=FeatureReviewIn,
        responses=FeatureReviewOut,
        summary="Put the pairs where a feature is most active in the review queue",
        description=(
            "Give top, threshold or both. The items of those pairs get an open review entry "
            "of source `explanation` with the feature as the reason; an item already open "
            "for this source keeps its entry, so repeating the call adds nothing."
        ),
    )
    def post(self, request: Request, project_id: int, job_id: int, index: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(FeatureReviewIn, request.data)
        counts = review_entries_from_feature(
            project=project,
            job=job_id,
            feature=index,
            top=data.get("top"),
            threshold=data.get("threshold"),
            user=request.user,
        )
        return Response(FeatureReviewOut(counts).data)

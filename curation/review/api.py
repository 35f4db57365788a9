"""The review queue as an API: list and read entries, feed the queue, resolve, message an annotator.

Admins and curators only: an annotator of the project gets 403, anyone else 404.
Annotators appear by their pseudonym in the project.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import validated
from annotation.pagination import paginate
from annotation.selectors import STAFF_ROLES, project_get_for
from annotation.serializers import StrictJSONField
from curation.review.selectors import (
    DECISIONS,
    SOURCES,
    STATES,
    label_answers,
    review_entry_get_for,
    review_entry_list_for,
    review_filters_clean,
)
from curation.review.services import (
    review_entries_from_agreement,
    review_entries_from_job,
    review_entry_resolve,
    review_message_send,
)
from curation.selectors import job_get_for

TAG = ["review"]


class AdjudicationOut(serializers.Serializer):
    id = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=DECISIONS)
    label = serializers.SerializerMethodField(
        help_text="decision=label: the answers, in the submission shape (response ids)."
    )
    reason = serializers.CharField()
    params = serializers.DictField(help_text="more_votes: votes and priority asked for.")
    decided_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.DictField(), allow_null=True))
    def get_label(self, adjudication) -> list[dict] | None:
        return label_answers(adjudication) if adjudication.label is not None else None


class EntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    external_id = serializers.CharField(source="item.external_id")
    title = serializers.CharField(source="item.title")
    source = serializers.ChoiceField(choices=SOURCES)
    reason = serializers.CharField()
    job = serializers.IntegerField(source="job_id", allow_null=True)
    scores = serializers.DictField(help_text="The figures that sent the item here.")
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    adjudication = serializers.SerializerMethodField()

    @extend_schema_field(AdjudicationOut(allow_null=True))
    def get_adjudication(self, entry) -> dict | None:
        # hasattr is False when the reverse one-to-one has no row (the entry is open).
        return AdjudicationOut(entry.adjudication).data if hasattr(entry, "adjudication") else None


class AgreementFeedIn(serializers.Serializer):
    threshold = serializers.FloatField(
        help_text="Items whose agreement is under this (0-1] are queued."
    )


class JobFeedIn(serializers.Serializer):
    job = serializers.IntegerField(min_value=1, help_text="A succeeded suspects or FiFA job.")


class FeedOut(serializers.Serializer):
    added = serializers.IntegerField(help_text="New entries (items already queued are skipped).")


class ResolveIn(serializers.Serializer):
    decision = serializers.ChoiceField(choices=DECISIONS)
    label = StrictJSONField(
        required=False,
        help_text="decision=label: a list of answers as for a submission (response ids); "
        "questions left out keep their aggregate.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    votes = serializers.IntegerField(
        required=False, help_text="decision=more_votes: extra annotators (1-10, default 1)."
    )
    priority = serializers.FloatField(
        required=False, help_text="decision=more_votes: the item's new priority."
    )


class MessageIn(serializers.Serializer):
    annotator = serializers.CharField(max_length=64, help_text="The annotator's pseudonym.")
    body = serializers.CharField(max_length=2000)


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class ReviewListApi(APIView):
    @extend_schema(
        tags=TAG,
        parameters=[
            OpenApiParameter("source", OpenApiTypes.STR, enum=[value for value, _ in SOURCES]),
            OpenApiParameter(
                "state", OpenApiTypes.STR, enum=list(STATES), description="open by default"
            ),
        ],
        responses=EntryOut(many=True),
        summary="The review queue, newest first (admin, curator)",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        source, state = review_filters_clean(request.query_params)
        entries = review_entry_list_for(project=project, source=source, state=state)
        return paginate(self, request, entries, EntryOut)


class ReviewDetailApi(APIView):
    @extend_schema(tags=TAG, responses=EntryOut, summary="One review entry and its resolution")
    def get(self, request: Request, project_id: int, entry_id: int) -> Response:
        entry, _ = review_entry_get_for(user=request.user, project_id=project_id, entry_id=entry_id)
        return Response(EntryOut(entry).data)


class ReviewFromAgreementApi(APIView):
    @extend_schema(
        tags=TAG,
        request=AgreementFeedIn,
        responses={201: FeedOut},
        summary="Queue the items whose agreement is under a threshold (admin, curator)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(AgreementFeedIn, request.data)
        added = review_entries_from_agreement(
            project=project, threshold=data["threshold"], user=request.user
        )
        return Response({"added": added}, status=status.HTTP_201_CREATED)


class ReviewFromJobApi(APIView):
    @extend_schema(
        tags=TAG,
        request=JobFeedIn,
        responses={201: FeedOut},
        summary="Queue the items of the pairs a suspects job flagged (admin, curator)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        data = validated(JobFeedIn, request.data)
        job = job_get_for(user=request.user, project_id=project.id, job_id=data["job"])
        added = review_entries_from_job(job=job, user=request.user)
        return Response({"added": added}, status=status.HTTP_201_CREATED)


class ReviewResolveApi(APIView):
    @extend_schema(
        tags=TAG,
        request=ResolveIn,
        responses={201: AdjudicationOut, 200: AdjudicationOut},
        summary="Resolve an entry: accept, label, drop or more_votes (admin, curator)",
        description=(
            "Stored as an adjudication of its own; annotations are never edited. 201 when "
            "stored; the same request again answers 200 with the first adjudication; another "
            "decision on a resolved entry is a 409. A bad label is a 400 naming the field "
            "(label[0].chosen), checked like an annotator's answers."
        ),
    )
    def post(self, request: Request, project_id: int, entry_id: int) -> Response:
        entry, _ = review_entry_get_for(user=request.user, project_id=project_id, entry_id=entry_id)
        data = validated(ResolveIn, request.data)
        adjudication, created = review_entry_resolve(
            entry=entry,
            user=request.user,
            decision=data["decision"],
            label=data.get("label"),
            reason=data.get("reason", ""),
            votes=data.get("votes"),
            priority=data.get("priority"),
        )
        return Response(
            AdjudicationOut(adjudication).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ReviewMessageApi(APIView):
    @extend_schema(
        tags=TAG,
        request=MessageIn,
        responses={201: MessageOut},
        summary="Message an annotator (by pseudonym) about a resolved entry's item",
    )
    def post(self, request: Request, project_id: int, entry_id: int) -> Response:
        entry, _ = review_entry_get_for(user=request.user, project_id=project_id, entry_id=entry_id)
        data = validated(MessageIn, request.data)
        message = review_message_send(
            entry=entry, sender=request.user, annotator=data["annotator"], body=data["body"]
        )
        return Response(MessageOut(message).data, status=status.HTTP_201_CREATED)

"""Output shapes and light input parsing. No logic here: services validate."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from rest_framework import serializers

from annotation.errors import ValidationFailed
from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Assignment,
    Item,
    Membership,
    Project,
    Question,
    Response,
)
from annotation.parsers import json_check, json_loads_strict
from annotation.pseudonyms import pseudonym
from annotation.services.projects import PROFILE_FIELDS

MAX_POSITION = 32767  # Question.position is a PositiveSmallIntegerField


class StrictJSONField(serializers.JSONField):
    """A JSON field held to Ballot's input limits (annotation/parsers.py).

    JSON sent as a form string is decoded strictly too, and ``object_only`` refuses
    anything but an object (so form-encoded ``settings=null`` is a 400, not a NULL insert).
    """

    def __init__(self, *args, object_only: bool = False, **kwargs):
        self.object_only = object_only
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        try:
            if self.binary or getattr(data, "is_json_string", False):
                if isinstance(data, bytes):
                    data = data.decode("utf-8", errors="replace")
                value = json_loads_strict(data)
            else:
                json_check(data)
                value = data
        except ValidationFailed as exc:
            raise serializers.ValidationError(
                f"{exc.detail} (at {exc.field})"
                if exc.field and exc.field != "body"
                else exc.detail
            ) from None
        if value is None and not self.allow_null:
            self.fail("null")
        if self.object_only and not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class QuestionOut(serializers.ModelSerializer):
    class Meta:
        model = Question
        fields = ["id", "kind", "name", "prompt", "position", "required", "config"]


class QuestionIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["pairwise", "ranking", "rating", "correction"])
    name = serializers.CharField(max_length=64, required=False)
    prompt = serializers.CharField(max_length=500, required=False, allow_blank=True)
    position = serializers.IntegerField(min_value=0, max_value=MAX_POSITION, required=False)
    required = serializers.BooleanField(required=False, default=True)
    config = StrictJSONField(required=False, default=dict, object_only=True)


class QuestionPatch(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    prompt = serializers.CharField(max_length=500, required=False, allow_blank=True)
    position = serializers.IntegerField(min_value=0, max_value=MAX_POSITION, required=False)
    required = serializers.BooleanField(required=False)
    config = StrictJSONField(required=False, object_only=True)


class ProjectOut(serializers.ModelSerializer):
    questions = QuestionOut(many=True, read_only=True)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "instructions",
            "overlap",
            "gold_rate",
            "require_profile",
            "show_gold_feedback",
            "quality_threshold",
            "lease_seconds",
            "adaptive_overlap",
            "min_annotators",
            "max_annotators",
            "agreement_threshold",
            "confidence_threshold",
            "settings",
            "created_at",
            "role",
            "questions",
        ]

    def get_role(self, obj: Project) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(obj.id)


class ProjectIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
    gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    require_profile = serializers.BooleanField(required=False)
    show_gold_feedback = serializers.BooleanField(required=False)
    quality_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)
    lease_seconds = serializers.IntegerField(min_value=30, max_value=7 * 86400, required=False)
    adaptive_overlap = serializers.BooleanField(
        required=False,
        help_text="Items start at min_annotators and ask for one more while their votes "
        "disagree, up to max_annotators; off, every item wants `overlap`.",
    )
    min_annotators = serializers.IntegerField(min_value=1, max_value=100, required=False)
    max_annotators = serializers.IntegerField(min_value=1, max_value=100, required=False)
    agreement_threshold = serializers.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        help_text="Votes agreeing at least this much (share on the most voted label; "
        "for ratings one minus the spread) close an item.",
    )
    confidence_threshold = serializers.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        allow_null=True,
        help_text="Optional: when a reliability job finishes, items whose posterior confidence "
        "is under this ask for another vote (up to max_annotators).",
    )
    settings = StrictJSONField(required=False, object_only=True)
    questions = QuestionIn(many=True, required=False)


class ProjectPatch(ProjectIn):
    name = serializers.CharField(max_length=200, required=False)
    questions = None


class ResponseOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model_name")

    class Meta:
        model = Response
        fields = ["id", "position", "text", "model", "metadata"]


class ResponseBlind(serializers.ModelSerializer):
    """What an annotator sees: no model names, so they cannot favour a brand."""

    class Meta:
        model = Response
        fields = ["id", "position", "text"]


class ItemOut(serializers.ModelSerializer):
    responses = ResponseOut(many=True, read_only=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "conversation",
            "responses",
            "metadata",
            "tags",
            "is_gold",
            "gold_answer",
            "priority",
            "slots_taken",
            "overlap_extra",
            "created_at",
        ]


class ItemIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=255, required=False)
    conversation = StrictJSONField(required=False)
    prompt = StrictJSONField(required=False)
    responses = StrictJSONField()
    metadata = StrictJSONField(required=False)
    tags = StrictJSONField(required=False)
    is_gold = serializers.BooleanField(required=False)
    gold_answer = StrictJSONField(required=False)
    priority = serializers.FloatField(required=False)


class ItemForAnnotator(serializers.ModelSerializer):
    responses = ResponseBlind(many=True, read_only=True)

    class Meta:
        model = Item
        fields = ["id", "external_id", "conversation", "responses"]


class AssignmentOut(serializers.ModelSerializer):
    item = ItemForAnnotator(read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True)

    class Meta:
        model = Assignment
        fields = ["id", "project", "status", "leased_until", "created_at", "finished_at", "item"]


def _iso(value: datetime | None) -> str | None:
    # DRF's DateTimeField output: ISO 8601 in the current time zone, "Z" for UTC.
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def assignment_out(assignment: Assignment) -> dict:
    """``AssignmentOut(assignment).data`` in plain code, for the hot endpoints (next/, submit/).

    The serializer's machinery (fields bound per instance, a ReturnDict per object) was a
    measurable share of a request that otherwise runs two statements; this builds the same
    dict (tests/annotation/test_hot_path.py compares them). Expects the item's responses
    prefetched (``selectors.assignment_responses_prefetch``).
    """
    item = assignment.item
    return {
        "id": assignment.id,
        "project": assignment.project_id,
        "status": assignment.status,
        "leased_until": _iso(assignment.leased_until),
        "created_at": _iso(assignment.created_at),
        "finished_at": _iso(assignment.finished_at),
        "item": {
            "id": item.id,
            "external_id": item.external_id,
            "conversation": item.conversation,
            "responses": [
                {"id": response.id, "position": response.position, "text": response.text}
                for response in item.responses.all()
            ],
        },
    }


class AssignmentBrief(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id", read_only=True)
    item = serializers.IntegerField(source="item_id", read_only=True)

    class Meta:
        model = Assignment
        fields = ["id", "project", "item", "status", "leased_until", "created_at", "finished_at"]


class SubmitIn(serializers.Serializer):
    answers = StrictJSONField()
    time_spent_ms = StrictJSONField(required=False, allow_null=True)


def annotation_answers(annotation: Annotation) -> list[dict]:
    """An annotation's answers in the submission shape, from prefetched rows."""
    out: list[dict] = []
    for row in annotation.pairwise_answers.all():
        out.append(
            {
                "question": row.question_id,
                "chosen": row.chosen_id,
                "rejected": row.rejected_id,
                "tie": row.tie,
                "strength": row.strength,
            }
        )
    for row in annotation.ranking_answers.all():
        out.append({"question": row.question_id, "ranking": row.ranking})
    ratings: dict[int, list] = {}
    for row in annotation.rating_answers.all():
        ratings.setdefault(row.question_id, []).append(
            {"response": row.response_id, "aspect": row.aspect, "value": row.value}
        )
    out.extend({"question": qid, "ratings": rows} for qid, rows in ratings.items())
    corrections: dict[int, list] = {}
    for row in annotation.correction_answers.all():
        corrections.setdefault(row.question_id, []).append(
            {
                "id": row.id,
                "response": row.response_id,
                "start": row.start,
                "end": row.end,
                "original_text": row.original_text,
                "corrected_text": row.corrected_text,
                "category": row.category,
                "comment": row.comment,
            }
        )
    out.extend({"question": qid, "corrections": rows} for qid, rows in corrections.items())
    return out


class AnnotationOut(serializers.ModelSerializer):
    annotator = serializers.SerializerMethodField(
        help_text="The annotator's pseudonym in this project (null for an LM judge)."
    )
    username = serializers.SerializerMethodField(
        help_text="The annotator's username: present only for project admins."
    )
    item = serializers.IntegerField(source="item_id")
    assignment = serializers.IntegerField(source="assignment_id", allow_null=True)
    answers = serializers.SerializerMethodField()

    class Meta:
        model = Annotation
        fields = [
            "id",
            "item",
            "assignment",
            "annotator",
            "username",
            "source",
            "judge_name",
            "time_spent_ms",
            "created_at",
            "answers",
        ]

    def get_annotator(self, obj: Annotation) -> str | None:
        # Pseudonym for everyone; ``username`` is added only for admins (see annotation/pseudonyms.py).
        return pseudonym(obj.annotator_id, str(obj.project_id)) if obj.annotator_id else None

    def get_username(self, obj: Annotation) -> str | None:
        return obj.annotator.username if obj.annotator_id else None

    def to_representation(self, instance: Annotation) -> dict:
        data = super().to_representation(instance)
        if not self.context.get("reveal"):
            del data["username"]
        return data

    def get_answers(self, obj: Annotation) -> list[dict]:
        return annotation_answers(obj)


class MembershipOut(serializers.ModelSerializer):
    """A member as the reader may see them: the pseudonym always, the username per the one rule.

    ``context["reveal"]`` (project admins) shows every username; otherwise only the reader's own.
    """

    pseudonym = serializers.SerializerMethodField()
    username = serializers.SerializerMethodField(
        help_text="Present for project admins, and on the reader's own membership."
    )

    class Meta:
        model = Membership
        fields = ["id", "pseudonym", "username", "role", "created_at"]

    def get_pseudonym(self, obj: Membership) -> str:
        return pseudonym(obj.user_id, str(obj.project_id))

    def get_username(self, obj: Membership) -> str | None:
        reader = self.context.get("reader_id")
        if self.context.get("reveal", True) or obj.user_id == reader:
            return obj.user.username
        return None


class MembershipIn(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(required=False, default="annotator")


class MembershipPatch(serializers.Serializer):
    role = serializers.CharField()


class ProfileOut(serializers.ModelSerializer):
    class Meta:
        model = AnnotatorProfile
        fields = [*PROFILE_FIELDS, "consented_at", "completed_at"]


class ProfileIn(serializers.Serializer):
    consent = serializers.BooleanField(required=False, allow_null=True, default=None)
    age_band = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    gender = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    birth_country = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=64
    )
    residence_country = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=64
    )
    languages = StrictJSONField(required=False)
    education = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=64
    )
    employment = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=64
    )
    expertise = StrictJSONField(required=False)
    llm_familiarity = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=32
    )
    llm_use_frequency = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=32
    )
    stated_preferences = StrictJSONField(required=False)
    self_description = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=5000
    )


class TokenIn(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True, default="")


class ImportIn(serializers.Serializer):
    file = serializers.FileField(required=False)
    format = serializers.ChoiceField(
        choices=["auto", "native", "trl", "hh", "ranked", "ratings"], required=False
    )


class ErrorItemOut(serializers.Serializer):
    field = serializers.CharField(allow_null=True)
    detail = serializers.CharField()
    line = serializers.IntegerField(required=False, help_text="The import line, for import errors.")


class ErrorOut(serializers.Serializer):
    """The one error shape (annotation/errors.py) every 4xx answer has."""

    error = serializers.CharField(
        help_text="A short code: invalid, not_found, conflict, too_large…"
    )
    detail = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The field path at fault, if any.")
    errors = ErrorItemOut(many=True)


class ProjectProfileOut(ProfileOut):
    """A profile as project staff see it: pseudonymised; free text only for those who may reveal."""

    annotator = serializers.CharField(read_only=True, help_text="The annotator's pseudonym.")
    username = serializers.CharField(read_only=True, required=False)

    class Meta(ProfileOut.Meta):
        fields = [*ProfileOut.Meta.fields, "annotator", "username"]


class ProjectProfilesOut(serializers.Serializer):
    count = serializers.IntegerField()
    results = ProjectProfileOut(many=True)


class ImportResultOut(serializers.Serializer):
    format = serializers.CharField()
    lines = serializers.IntegerField()
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    updated = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    conflict_lines = serializers.ListField(child=serializers.IntegerField())
    skipped_invalid = serializers.IntegerField()
    invalid_lines = ErrorItemOut(many=True)
    responses = serializers.IntegerField()
    annotations = serializers.IntegerField()
    questions_created = serializers.ListField(child=serializers.CharField())


class SubmitOut(serializers.Serializer):
    annotation = serializers.IntegerField()
    assignment = serializers.IntegerField(allow_null=True)
    created = serializers.BooleanField()
    replayed = serializers.BooleanField()
    gold_answer = serializers.JSONField(required=False)
    next = AssignmentOut(
        required=False,
        allow_null=True,
        help_text="With ?next=1: my next leased assignment (null when nothing is left for me).",
    )

from __future__ import annotations

from typing import Any

from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from curation.jobs.registry import AVAILABLE
from curation.models import Artifact, DatasetVersion, Job, PairScore


class KindParamsSchema(PolymorphicProxySerializer):
    """Documents a params object as one of the kinds' params components (for the schema only)."""


class _KindParamsSchemaExtension(PolymorphicProxySerializerExtension):
    # anyOf, not drf-spectacular's oneOf: one kind's params object can be valid for
    # another kind too (every field has a default), and oneOf demands exactly one match.
    target_class = KindParamsSchema
    priority = 1

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"anyOf": super().map_serializer(auto_schema, direction)["oneOf"]}


# Each kind's parameters as its own OpenAPI component; ``params`` is any one of them.
_KIND_PARAMS = KindParamsSchema(
    component_name="JobParams",
    serializers=list(
        {spec.params: spec.params.serializer() for spec in AVAILABLE.values()}.values()
    ),
    resource_type_field_name=None,
)


@extend_schema_field(_KIND_PARAMS)
class JobParamsField(serializers.JSONField):
    """The parameters of a job: exactly those of its kind (GET /api/v1/job-kinds/)."""


class ArtifactOut(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "kind", "path", "sha256", "size", "metadata", "created_at"]


class JobOut(serializers.ModelSerializer):
    artifacts = ArtifactOut(many=True, read_only=True)
    params = JobParamsField(
        read_only=True, help_text="The kind's parameters as the job ran them, defaults filled in."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "params",
            "status",
            "progress",
            "message",
            "result",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "artifacts",
        ]


class JobIn(serializers.Serializer):
    kind = serializers.CharField(help_text="One of the available kinds of GET /api/v1/job-kinds/.")
    params = JobParamsField(
        required=False,
        default=dict,
        help_text="The kind's parameters; an unknown key is refused, missing ones get defaults.",
    )


@extend_schema_field(OpenApiTypes.NUMBER)
class BoundField(serializers.Field):
    """A bound as declared: an integer stays an integer (2**63 - 1 must not become a float)."""

    def to_representation(self, value: float) -> float:
        return value


class JobParamOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=["integer", "number", "boolean", "string", "array", "object"]
    )
    format = serializers.CharField(
        allow_null=True,
        help_text="model: a folder under a configured model root; date-time: an ISO date or datetime.",
    )
    default = serializers.JSONField(allow_null=True)
    nullable = serializers.BooleanField()
    minimum = BoundField(allow_null=True)
    maximum = BoundField(allow_null=True)
    exclusive_maximum = serializers.BooleanField()
    choices = serializers.ListField(child=serializers.CharField(), allow_null=True)
    help = serializers.CharField()


class JobKindOut(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    available = serializers.BooleanField(
        help_text="False for kinds declared for what comes next; launching one is a 400."
    )
    summary = serializers.CharField()
    queue = serializers.ChoiceField(choices=["gpu", "default"], allow_null=True)
    sharded = serializers.BooleanField(help_text="Fans out into shards merged at the end.")
    writes = serializers.ListField(child=serializers.CharField())
    params_component = serializers.CharField(
        allow_null=True, help_text="The OpenAPI component describing the params object."
    )
    params = JobParamOut(many=True)


class PairScoreOut(serializers.ModelSerializer):
    class Meta:
        model = PairScore
        fields = [
            "id",
            "pair_key",
            "item",
            "kind",
            "question",
            "chosen_response",
            "rejected_response",
            "agreement",
            "margin",
            "prob_chosen",
            "quality",
            "diversity",
            "importance",
            "kept",
            "kept_rank",
            "suspect",
            "suspect_confidence",
            "fold",
        ]


class DatasetVersionOut(serializers.ModelSerializer):
    files = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "version",
            "name",
            "format",
            "job",
            "row_counts",
            "filters",
            "aggregation",
            "manifest",
            "created_at",
            "files",
        ]

    def get_files(self, obj: DatasetVersion) -> list[dict]:
        return [
            {"path": entry["path"], "sha256": entry.get("sha256"), "size": entry.get("bytes")}
            for entry in obj.manifest.get("files") or []
        ]

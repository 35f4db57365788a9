from __future__ import annotations

from rest_framework import serializers

from curation.models import Artifact, DatasetVersion, Job, PairScore


class ArtifactOut(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "kind", "path", "sha256", "size", "metadata", "created_at"]


class JobOut(serializers.ModelSerializer):
    artifacts = ArtifactOut(many=True, read_only=True)

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
    kind = serializers.CharField()
    params = serializers.JSONField(required=False, default=dict)


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

from __future__ import annotations

from django.contrib import admin

from curation import models


@admin.register(models.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "kind",
        "status",
        "progress",
        "message",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]


@admin.register(models.JobShard)
class JobShardAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "index", "done", "worker", "finished_at"]


@admin.register(models.Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "job", "kind", "path", "size", "created_at"]


@admin.register(models.PairScore)
class PairScoreAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "job",
        "item",
        "kind",
        "margin",
        "importance",
        "kept",
        "suspect",
        "suspect_confidence",
    ]
    list_filter = ["kept", "suspect", "kind"]
    raw_id_fields = ["job", "item", "chosen_response", "rejected_response"]


@admin.register(models.DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "version", "name", "format", "created_at"]
    readonly_fields = ["manifest"]

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


@admin.register(models.Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "url", "active", "created_at"]
    list_filter = ["active"]
    # The signing secret is shown once, on creation in the workspace or the API; never here.
    exclude = ["secret"]
    # URL and events are changed in the workspace or the API, where they are validated.
    readonly_fields = ["project", "url", "events", "created_by", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False  # created through the service, which makes the secret and checks the URL

    # Through the services, so the URL is checked and the cached targets are dropped.
    def save_model(self, request, obj, form, change) -> None:
        from curation.webhooks.services import EDITABLE_FIELDS, webhook_update

        data = {
            name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE_FIELDS
        }
        webhook_update(webhook=obj, data=data)

    def delete_model(self, request, obj) -> None:
        from curation.webhooks.services import webhook_delete

        webhook_delete(webhook=obj)

    def delete_queryset(self, request, queryset) -> None:
        for webhook in queryset:
            self.delete_model(request, webhook)


@admin.register(models.WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "webhook",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", "event_type"]
    raw_id_fields = ["webhook"]
    readonly_fields = [
        "event_type",
        "event_id",
        "payload",
        "attempts",
        "status",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "updated_at",
        "finished_at",
    ]

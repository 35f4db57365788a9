from __future__ import annotations

from django import forms
from django.contrib import admin

from annotation.errors import ValidationFailed
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


class JudgeAdminForm(forms.ModelForm):
    """The API key is write-only here too: typed into a password field, stored encrypted."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored key; it is never shown.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = models.Judge
        fields = [
            "project",
            "name",
            "backend",
            "base_url",
            "model",
            "api_key_env",
            "timeout_seconds",
            "max_retries",
            "concurrency",
            "max_requests_per_job",
            "batch_size",
            "logprobs",
            "reward_job",
            "on_disagreement",
            "prompts",
        ]

    def clean_prompts(self):
        from curation.judges.services import prompts_clean

        try:
            return prompts_clean(self.cleaned_data.get("prompts") or {})
        except ValidationFailed as error:
            raise forms.ValidationError(error.detail)

    def save(self, commit: bool = True):
        from curation.judges.secrets import api_key_encrypt

        judge = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            judge.api_key_encrypted = ""
        elif self.cleaned_data.get("api_key"):
            judge.api_key_encrypted = api_key_encrypt(self.cleaned_data["api_key"])
        if commit:
            judge.save()
        return judge


@admin.register(models.Judge)
class JudgeAdmin(admin.ModelAdmin):
    form = JudgeAdminForm
    list_display = ["id", "project", "name", "backend", "model", "updated_at"]
    list_filter = ["backend"]
    raw_id_fields = ["project", "reward_job", "created_by"]


@admin.register(models.JudgeVersion)
class JudgeVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "judge", "number", "label", "created_at"]
    readonly_fields = ["judge", "number", "label", "fingerprint", "settings", "created_at"]


@admin.register(models.JudgeVerdict)
class JudgeVerdictAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "item", "question", "outcome", "confidence", "consistent"]
    list_filter = ["outcome"]
    raw_id_fields = ["version", "item", "question", "job", "annotation"]

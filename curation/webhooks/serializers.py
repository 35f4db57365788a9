from __future__ import annotations

from rest_framework import serializers

from curation.models import Webhook, WebhookDelivery, WebhookEvent


class WebhookOut(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "url", "description", "events", "active", "created_at", "updated_at"]


class WebhookCreatedOut(WebhookOut):
    """Only the creation answer carries the secret; it is never shown again."""

    secret = serializers.CharField(
        help_text="whsec_ + base64 key for verifying signatures. Shown once: store it now."
    )

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "secret"]


class WebhookIn(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL that receives the POSTs.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.values),
        required=False,
        allow_empty=False,
        help_text="Event types to send (default: all).",
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    active = serializers.BooleanField(required=False, default=True)


class WebhookPatchIn(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.values),
        required=False,
        allow_empty=False,
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class WebhookDeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event_type",
            "event_id",
            "payload",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "updated_at",
            "finished_at",
        ]

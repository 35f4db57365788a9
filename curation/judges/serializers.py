from __future__ import annotations

from rest_framework import serializers

from curation.models import Judge, JudgeBackend, JudgeVersion
from models_gpu.judges import DEFAULT_TEMPLATES


class JudgeVersionOut(serializers.ModelSerializer):
    class Meta:
        model = JudgeVersion
        fields = ["id", "number", "label", "fingerprint", "settings", "created_at"]


class JudgeOut(serializers.ModelSerializer):
    """A judge's settings. The API key is never included: only whether one is set, and how."""

    api_key_set = serializers.SerializerMethodField(
        help_text="An encrypted API key is stored (its value is never returned)."
    )
    default_prompts = serializers.SerializerMethodField(
        help_text="The shipped templates (pairwise, ranking, rating and tagging: the routing job's instance tags), used for the kinds ``prompts`` leaves out."
    )
    versions = JudgeVersionOut(many=True, read_only=True)

    class Meta:
        model = Judge
        fields = [
            "id",
            "name",
            "backend",
            "base_url",
            "model",
            "api_key_env",
            "api_key_set",
            "timeout_seconds",
            "max_retries",
            "concurrency",
            "max_requests_per_job",
            "batch_size",
            "logprobs",
            "reward_job",
            "on_disagreement",
            "prompts",
            "default_prompts",
            "versions",
            "created_at",
            "updated_at",
        ]

    def get_api_key_set(self, judge: Judge) -> bool:
        return bool(judge.api_key_encrypted)

    def get_default_prompts(self, judge: Judge) -> dict[str, str]:
        return dict(DEFAULT_TEMPLATES)


class JudgeIn(serializers.Serializer):
    """For the schema; the service checks every field and answers 400 naming it."""

    name = serializers.CharField(max_length=100, help_text="Fixed once created.")
    backend = serializers.ChoiceField(choices=JudgeBackend.values)
    base_url = serializers.CharField(
        max_length=2000, required=False, help_text="openai: e.g. https://api.example.org/v1"
    )
    model = serializers.CharField(
        max_length=500,
        required=False,
        help_text="openai: the served model; local: a folder under BALLOT_MODEL_ROOTS.",
    )
    api_key = serializers.CharField(
        max_length=1000,
        required=False,
        write_only=True,
        help_text="Stored encrypted, never returned. Empty removes it.",
    )
    api_key_env = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Read the API key from this environment variable where the job runs.",
    )
    timeout_seconds = serializers.FloatField(required=False, min_value=0.1, max_value=600)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=10)
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=64)
    max_requests_per_job = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=256)
    logprobs = serializers.BooleanField(required=False)
    reward_job = serializers.IntegerField(required=False, allow_null=True)
    on_disagreement = serializers.ChoiceField(choices=["tie", "abstain"], required=False)
    prompts = serializers.DictField(child=serializers.CharField(), required=False)


class JudgeTestIn(serializers.Serializer):
    item = serializers.IntegerField(help_text="An item of the project.")


class JudgeTestOut(serializers.Serializer):
    judge = serializers.IntegerField()
    version = serializers.CharField()
    item = serializers.IntegerField()
    requests = serializers.IntegerField()
    questions = serializers.ListField(child=serializers.DictField())
    error = serializers.CharField(
        allow_null=True,
        help_text="Why the judge gave no usable verdict (timed out, the HTTP status, an "
        "unparseable answer); null when every question got one.",
    )
    limits = serializers.DictField(
        help_text="The limits of an interactive test: deadline_seconds (20) in all, "
        "request_timeout_seconds and max_retries (at most 10 s and 1, whatever the judge's "
        "own settings)."
    )


class JudgeStatsVersionOut(serializers.Serializer):
    version = serializers.CharField()
    number = serializers.IntegerField()
    created_at = serializers.CharField()
    verdicts = serializers.IntegerField()
    labels = serializers.IntegerField()
    ties = serializers.IntegerField()
    abstentions = serializers.IntegerField()
    position_consistency = serializers.FloatField(allow_null=True)
    pairs_in_both_orders = serializers.IntegerField()
    human_agreement = serializers.FloatField(allow_null=True)
    compared_with_humans = serializers.IntegerField()


class JudgeStatsOut(serializers.Serializer):
    judge = serializers.IntegerField()
    name = serializers.CharField()
    versions = JudgeStatsVersionOut(many=True)

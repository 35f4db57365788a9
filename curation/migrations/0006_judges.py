"""LM judges: configurations, versions and their verdicts."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0005_reliability"),
        ("annotation", "0013_ai_annotations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Judge",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                (
                    "backend",
                    models.CharField(
                        choices=[
                            ("openai", "OpenAI-compatible chat completions"),
                            ("local", "Local causal LM"),
                            ("reward", "Reward model (Bradley–Terry on embeddings)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("base_url", models.CharField(blank=True, max_length=2000)),
                (
                    "model",
                    models.CharField(
                        blank=True,
                        help_text="The served model's name (openai) or a folder under BALLOT_MODEL_ROOTS (local).",
                        max_length=500,
                    ),
                ),
                ("api_key_env", models.CharField(blank=True, max_length=100)),
                ("api_key_encrypted", models.TextField(blank=True)),
                ("timeout_seconds", models.FloatField(default=30.0)),
                ("max_retries", models.PositiveSmallIntegerField(default=3)),
                ("concurrency", models.PositiveSmallIntegerField(default=4)),
                ("max_requests_per_job", models.PositiveIntegerField(blank=True, null=True)),
                ("batch_size", models.PositiveSmallIntegerField(default=8)),
                ("logprobs", models.BooleanField(default=False)),
                (
                    "on_disagreement",
                    models.CharField(
                        choices=[("tie", "Tie"), ("abstain", "Abstain")],
                        default="tie",
                        max_length=8,
                    ),
                ),
                (
                    "prompts",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Question kind -> template; missing kinds use defaults.",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="judges",
                        to="annotation.project",
                    ),
                ),
                (
                    "reward_job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="curation.job",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="JudgeVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("label", models.CharField(max_length=200)),
                ("fingerprint", models.CharField(max_length=64)),
                ("settings", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "judge",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="curation.judge",
                    ),
                ),
            ],
            options={
                "ordering": ["judge_id", "number"],
            },
        ),
        migrations.CreateModel(
            name="JudgeVerdict",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("outcome", models.CharField(max_length=8)),
                ("answer", models.JSONField(blank=True, null=True)),
                ("confidence", models.FloatField(blank=True, null=True)),
                ("consistent", models.BooleanField(blank=True, null=True)),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("raw", models.JSONField(blank=True, default=dict)),
                ("input_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "annotation",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="annotation.annotation",
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.item",
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="curation.job",
                    ),
                ),
                (
                    "question",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.question",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="verdicts",
                        to="curation.judgeversion",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.AddConstraint(
            model_name="judge",
            constraint=models.UniqueConstraint(
                fields=("project", "name"), name="judge_unique_name"
            ),
        ),
        migrations.AddConstraint(
            model_name="judgeversion",
            constraint=models.UniqueConstraint(
                fields=("judge", "number"), name="judgeversion_unique_number"
            ),
        ),
        migrations.AddConstraint(
            model_name="judgeversion",
            constraint=models.UniqueConstraint(
                fields=("judge", "fingerprint"), name="judgeversion_unique_fingerprint"
            ),
        ),
        migrations.AddConstraint(
            model_name="judgeverdict",
            constraint=models.UniqueConstraint(
                fields=("version", "item", "question"), name="judgeverdict_unique_item_question"
            ),
        ),
    ]

"""Agreement and annotator summaries kept on write (quality charts), and the explorer's indexes.

The summary tables are filled here for existing projects with the function the
rebuild command runs, so a summary written on submit and one backfilled agree. The
explorer gets an (item, source) index on annotations (per-item counts and the source
filter from the index alone) and, on PostgreSQL, a GIN index over item tags.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def add_tags_gin(apps, schema_editor):
    # A GIN index has no SQLite equivalent (SQLite matches tags with json_each).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS item_tags_gin ON annotation_item USING gin (tags jsonb_path_ops)"
        )


def drop_tags_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS item_tags_gin")


def backfill(apps, schema_editor):
    from annotation.services.quality import quality_summaries_rebuild

    Project = apps.get_model("annotation", "Project")
    for project_id in Project.objects.order_by("id").values_list("id", flat=True):
        quality_summaries_rebuild(project_id=project_id, apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0009_item_agreement_desc_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AnnotatorPairVote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value_a", models.CharField(max_length=32)),
                ("value_b", models.CharField(max_length=32)),
                ("units", models.PositiveIntegerField()),
                ("annotator_a", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("annotator_b", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("question", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.question")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("question", "annotator_a", "annotator_b", "value_a", "value_b"), name="annotator_pair_vote_unique")],
            },
        ),
        migrations.CreateModel(
            name="AnnotatorQuality",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("judgements", models.PositiveIntegerField(default=0)),
                ("majority_agreed", models.IntegerField(default=0)),
                ("majority_units", models.IntegerField(default=0)),
                ("gold_correct", models.PositiveIntegerField(default=0)),
                ("gold_scored", models.PositiveIntegerField(default=0)),
                ("annotator", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.project")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("project", "annotator"), name="annotator_quality_unique")],
            },
        ),
        migrations.CreateModel(
            name="AnnotatorTime",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("bucket_ms", models.PositiveIntegerField(help_text="Lower bound, see quality_summary.time_bucket.")),
                ("annotations", models.PositiveIntegerField(default=0)),
                ("annotator", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.project")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("project", "annotator", "bucket_ms"), name="annotator_time_unique")],
            },
        ),
        migrations.CreateModel(
            name="QualityAgreementSum",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                (
                    "unit_votes",
                    models.PositiveIntegerField(help_text="Votes in each of these units (m)."),
                ),
                (
                    "value",
                    models.CharField(
                        help_text="lo, hi, tie; a whole point; a response id.", max_length=32
                    ),
                ),
                ("shard", models.PositiveSmallIntegerField(default=0)),
                ("votes", models.BigIntegerField(default=0)),
                (
                    "votes_sq",
                    models.BigIntegerField(
                        default=0, help_text="Sum over units of the votes squared."
                    ),
                ),
                (
                    "value_sum",
                    models.FloatField(default=0.0, help_text="Sum of the exact rating values."),
                ),
                ("value_sum_sq", models.FloatField(default=0.0)),
                (
                    "observed",
                    models.FloatField(
                        default=0.0,
                        help_text="Sum of the units' interval disagreement (on their lowest label).",
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
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("question", "day", "unit_votes", "value", "shard"),
                        name="quality_agreement_sum_unique",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="annotation",
            index=models.Index(fields=["item", "source"], name="annotation_item_source_idx"),
        ),
        migrations.RunPython(add_tags_gin, drop_tags_gin),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]

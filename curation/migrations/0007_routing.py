"""Hybrid routing: per-item routes with their predicted gain or judge error."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0006_judges"),
        ("annotation", "0013_ai_annotations"),
    ]

    operations = [
        migrations.CreateModel(
            name="RoutingDecision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "route",
                    models.CharField(
                        choices=[("human", "Human"), ("ai", "AI judge")], max_length=8
                    ),
                ),
                ("score", models.FloatField()),
                ("score_kind", models.CharField(max_length=16)),
                ("rank", models.PositiveIntegerField()),
                ("features", models.JSONField(default=dict)),
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
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="routing_decisions",
                        to="curation.job",
                    ),
                ),
            ],
            options={
                "ordering": ["job_id", "rank"],
                "indexes": [
                    models.Index(fields=["job", "route", "rank"], name="routingdecision_route_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("job", "item"), name="routingdecision_unique_item"
                    )
                ],
            },
        ),
    ]

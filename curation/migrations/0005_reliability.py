"""Dawid-Skene fits: annotator reliabilities and item posteriors."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0004_adjudication"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="kind",
            field=models.CharField(
                choices=[
                    ("embed", "Embed texts"),
                    ("reward", "Train a reward model"),
                    ("fifa", "FiFA filtering"),
                    ("suspects", "Suspect labels"),
                    ("export", "Export a dataset version"),
                    ("reliability", "Annotator reliability"),
                    ("route", "Hybrid routing"),
                    ("label-ai", "Label with an LM judge"),
                    ("explain", "SAE explanations"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="AnnotatorReliability",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("question", models.CharField(max_length=64)),
                (
                    "aspect",
                    models.CharField(
                        blank=True, help_text="Rating aspect; blank: pairwise.", max_length=64
                    ),
                ),
                (
                    "reliability",
                    models.FloatField(
                        help_text="Expected accuracy under the fit (MACE: competence)."
                    ),
                ),
                ("votes", models.PositiveIntegerField()),
                (
                    "agreement",
                    models.FloatField(
                        blank=True,
                        help_text="Share of votes matching the majority of the other votes on the same unit.",
                        null=True,
                    ),
                ),
                (
                    "confusion",
                    models.JSONField(
                        default=list, help_text="K×K: rows the truth, columns the answer."
                    ),
                ),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="annotator_reliabilities",
                        to="curation.job",
                    ),
                ),
            ],
            options={
                "ordering": ["job_id", "question", "aspect", "-reliability"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("job", "question", "aspect", "annotator"),
                        name="annotatorreliability_unique",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ItemPosterior",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("question", models.CharField(max_length=64)),
                ("aspect", models.CharField(blank=True, max_length=64)),
                (
                    "unit",
                    models.CharField(
                        help_text="'<lower id>-<higher id>' (pairwise) or '<response id>' (rating).",
                        max_length=100,
                    ),
                ),
                ("label", models.PositiveSmallIntegerField()),
                ("value", models.FloatField(blank=True, null=True)),
                ("confidence", models.FloatField()),
                ("posterior", models.JSONField(default=list)),
                ("votes", models.PositiveIntegerField()),
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
                        related_name="item_posteriors",
                        to="curation.job",
                    ),
                ),
            ],
            options={
                "ordering": ["job_id", "item_id", "question", "aspect", "unit"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("job", "item", "question", "aspect", "unit"),
                        name="itemposterior_unique",
                    )
                ],
            },
        ),
    ]

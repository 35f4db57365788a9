"""Adaptive overlap: a minimum and maximum number of annotators per item."""

import django.db.models.expressions
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_quality_summary"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="adaptive_overlap",
            field=models.BooleanField(
                default=False,
                help_text="Ask for more annotators only where the votes disagree (min to max).",
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="min_annotators",
            field=models.PositiveSmallIntegerField(
                default=3, help_text="Adaptive overlap: annotators every item starts with."
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="max_annotators",
            field=models.PositiveSmallIntegerField(
                default=5, help_text="Adaptive overlap: most annotators an item is asked of."
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="agreement_threshold",
            field=models.FloatField(
                default=0.75,
                help_text="Adaptive overlap: an item whose votes agree at least this much closes.",
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="confidence_threshold",
            field=models.FloatField(
                blank=True,
                null=True,
                help_text="Adaptive overlap: when a reliability fit finishes, items whose label "
                "confidence is under this ask for another vote.",
            ),
        ),
        migrations.AddField(
            model_name="item",
            name="overlap_extra",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("min_annotators__gte", 1),
                    ("max_annotators__gte", django.db.models.expressions.F("min_annotators")),
                ),
                name="project_annotators_range",
            ),
        ),
        # The queue serves items that asked for more votes first: the index follows its order.
        migrations.RemoveIndex(model_name="item", name="item_queue_idx"),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                fields=["project", "is_gold", "is_full", "-overlap_extra", "-priority", "id"],
                name="item_queue_idx",
            ),
        ),
    ]

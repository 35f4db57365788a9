"""Adjudications: resolutions of review entries, records of their own.

Review entries gain a typed ``source``, the job and the scores that sent the item, and
at most one open entry per item and source. Entries stored before carry free-text
sources ("bulk action", "job <id>"): they are mapped onto the new values, and
duplicate open entries (same item and source) are closed before the constraint is added.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def map_sources(apps, schema_editor):
    ReviewEntry = apps.get_model("curation", "ReviewEntry")
    Job = apps.get_model("curation", "Job")
    for entry in ReviewEntry.objects.exclude(
        source__in=("suspects", "agreement", "gold", "explorer", "explanation")
    ).iterator():
        source = entry.source
        if source.startswith("job "):
            job_id = source.removeprefix("job ").strip()
            if job_id.isdigit() and Job.objects.filter(pk=int(job_id)).exists():
                entry.job_id = int(job_id)
            entry.source = "suspects"
        else:
            entry.source = "explorer"
        entry.save(update_fields=["source", "job"])
    seen = set()
    now = django.utils.timezone.now()
    for entry_id, item_id, source in (
        ReviewEntry.objects.filter(resolved_at__isnull=True)
        .order_by("id")
        .values_list("id", "item_id", "source")
        .iterator()
    ):
        if (item_id, source) in seen:
            ReviewEntry.objects.filter(pk=entry_id).update(resolved_at=now)
        seen.add((item_id, source))
    if schema_editor.connection.vendor == "postgresql":
        # The updates queued deferred foreign-key checks; run them now, or the ALTER TABLE
        # below fails with "pending trigger events" in this same transaction.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0003_review_entry"),
        ("annotation", "0012_annotator_feedback"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewentry",
            name="job",
            field=models.ForeignKey(
                blank=True,
                help_text="The job whose results sent the item here (suspect labels).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="review_entries",
                to="curation.job",
            ),
        ),
        migrations.AddField(
            model_name="reviewentry",
            name="scores",
            field=models.JSONField(
                blank=True, default=dict, help_text="The figures that sent the item here."
            ),
        ),
        migrations.RunPython(map_sources, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="reviewentry",
            name="source",
            field=models.CharField(
                choices=[
                    ("suspects", "Suspect-label job"),
                    ("agreement", "Agreement under a threshold"),
                    ("gold", "Failed gold item"),
                    ("explorer", "Data explorer (bulk action)"),
                    ("explanation", "Explanation job"),
                ],
                max_length=64,
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewentry",
            constraint=models.UniqueConstraint(
                condition=models.Q(("resolved_at__isnull", True)),
                fields=("item", "source"),
                name="reviewentry_one_open_per_source",
            ),
        ),
        migrations.CreateModel(
            name="Adjudication",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("decided_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "decision",
                    models.CharField(
                        choices=[
                            ("accept", "Accept the aggregate"),
                            ("label", "Choose or edit the label"),
                            ("drop", "Drop the item from exports"),
                            ("more_votes", "Send back for more votes"),
                        ],
                        max_length=16,
                    ),
                ),
                ("label", models.JSONField(blank=True, null=True)),
                ("reason", models.TextField(blank=True)),
                (
                    "params",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="more_votes: the votes and priority asked for.",
                    ),
                ),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "entry",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="adjudication",
                        to="curation.reviewentry",
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="adjudications",
                        to="annotation.item",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "indexes": [models.Index(fields=["item", "id"], name="adjudication_item_idx")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("decision", "label"), ("label__isnull", False)),
                            models.Q(
                                models.Q(("decision", "label"), _negated=True),
                                ("label__isnull", True),
                            ),
                            _connector="OR",
                        ),
                        name="adjudication_label_iff_decision",
                    )
                ],
            },
        ),
    ]

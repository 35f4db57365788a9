"""LM judges: configurations, versions and their verdicts."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0005_reliability"),
        ("annotation", "0013_ai_annotations"),
    ]

    operations = []

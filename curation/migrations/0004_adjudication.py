"""Adjudications: resolutions of review entries, records of their own."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0003_review_entry"),
        ("annotation", "0012_annotator_feedback"),
    ]

    operations = []

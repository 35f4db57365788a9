"""Adaptive overlap: a minimum and maximum number of annotators per item."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_quality_summary"),
    ]

    operations = []

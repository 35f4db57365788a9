"""Hybrid routing: per-item routes with their predicted gain or judge error."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0006_judges"),
    ]

    operations = []

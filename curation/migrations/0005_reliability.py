"""Dawid-Skene fits: annotator reliabilities and item posteriors."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0004_adjudication"),
    ]

    operations = []

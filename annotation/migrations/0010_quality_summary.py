"""Per-unit agreement and annotator summaries kept on write (quality charts)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0009_item_agreement_desc_index"),
    ]

    operations = []

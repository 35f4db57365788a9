"""Judge-proposed item tags for routing."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0008_explanations"),
    ]

    operations = []

"""SAE explanations of a preference dataset: features, their effects and examples."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0007_routing"),
    ]

    operations = []

"""Messages from curators to annotators about resolved items."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0011_adaptive_overlap"),
    ]

    operations = []

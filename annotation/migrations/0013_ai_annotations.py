"""AI annotations: what the judge said and how sure it was."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0012_annotator_feedback"),
    ]

    operations = []

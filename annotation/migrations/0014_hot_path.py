from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotation", "0013_ai_annotations")]

    operations = []

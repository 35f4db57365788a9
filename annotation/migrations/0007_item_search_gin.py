"""The GIN index over items' search vectors (PostgreSQL only)."""

from django.db import migrations


def add_gin_index(apps, schema_editor):
    # Not in Meta.indexes: a GIN index has no SQLite equivalent, and SQLite searches search_text.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS item_search_vector_gin "
            "ON annotation_item USING gin (search_vector)"
        )


def drop_gin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS item_search_vector_gin")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_item_search_excluded"),
    ]

    operations = [
        migrations.RunPython(add_gin_index, drop_gin_index),
    ]

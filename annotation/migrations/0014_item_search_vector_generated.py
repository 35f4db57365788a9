"""Items' search vectors become a column PostgreSQL generates from ``search_text``.

Before, the import wrote each item row and then rewrote it with an UPDATE that set the
vector (a second heap tuple and nine index entries again per item); and the vector's
field type has no array type for Django's UNNEST bulk insert, so item inserts went back
to one placeholder per value (planning a 38,000-parameter statement per batch). The
generated column costs one write per row and keeps UNNEST.

Django cannot alter a column into a generated one: the column is dropped and added
again (PostgreSQL fills it for every stored row while it rewrites the table, under an
exclusive lock), and its GIN index (migration 0007) built again. On SQLite the column
is NULL, as before.
"""

import django.contrib.postgres.search
from django.db import migrations, models

import annotation.models
from annotation.search import SEARCH_CONFIG


def drop_gin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS item_search_vector_gin")


def add_gin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS item_search_vector_gin "
            "ON annotation_item USING gin (search_vector)"
        )


def restore_plain_vectors(apps, schema_editor):
    # Backwards: the plain column comes back empty. The index first: PostgreSQL refuses
    # CREATE INDEX on a table with trigger events left pending by an UPDATE.
    add_gin_index(apps, schema_editor)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE annotation_item SET search_vector = to_tsvector(%s::regconfig, search_text)",
            [SEARCH_CONFIG],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0013_ai_annotations"),
    ]

    operations = [
        migrations.RunPython(drop_gin_index, restore_plain_vectors),
        migrations.RemoveField(model_name="item", name="search_vector"),
        migrations.AddField(
            model_name="item",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=annotation.models.ItemSearchDocument("search_text", config="english"),
                output_field=django.contrib.postgres.search.SearchVectorField(null=True),
            ),
        ),
        migrations.RunPython(add_gin_index, drop_gin_index),
    ]

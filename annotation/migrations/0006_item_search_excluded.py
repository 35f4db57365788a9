"""Items get a title, a search document (plain text everywhere, a tsvector under a GIN
index on PostgreSQL) and the ``excluded`` flag; existing rows are filled here."""

import django.contrib.postgres.search
from django.db import migrations, models

from annotation.search import SEARCH_CONFIG, item_search_text, item_title

CHUNK = 2000


def fill_search_fields(apps, schema_editor):
    Item = apps.get_model("annotation", "Item")
    Response = apps.get_model("annotation", "Response")
    last = 0
    while True:
        rows = list(
            Item.objects.filter(id__gt=last)
            .order_by("id")
            .only("id", "external_id", "conversation")[:CHUNK]
        )
        if not rows:
            break
        texts: dict[int, list[str]] = {}
        for item_id, text in (
            Response.objects.filter(item_id__gte=rows[0].id, item_id__lte=rows[-1].id)
            .order_by("item_id", "position")
            .values_list("item_id", "text")
        ):
            texts.setdefault(item_id, []).append(text)
        for row in rows:
            row.title = item_title(row.conversation, row.external_id)
            row.search_text = item_search_text(row.conversation, texts.get(row.id, []))
        Item.objects.bulk_update(rows, ["title", "search_text"])
        last = rows[-1].id
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE annotation_item SET search_vector = to_tsvector(%s::regconfig, search_text)",
            [SEARCH_CONFIG],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_annotation_request_hash"),
    ]

    operations = [
        migrations.AddField(
            model_name="item",
            name="excluded",
            field=models.BooleanField(
                default=False,
                help_text="Left out of exports and curation jobs (explorer bulk action).",
            ),
        ),
        migrations.AddField(
            model_name="item",
            name="search_text",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="item",
            name="search_vector",
            field=django.contrib.postgres.search.SearchVectorField(
                blank=True, editable=False, null=True
            ),
        ),
        migrations.AddField(
            model_name="item",
            name="title",
            field=models.CharField(blank=True, max_length=200),
        ),
        # The GIN index is built by 0007, in its own transaction: PostgreSQL refuses CREATE
        # INDEX on a table with deferred trigger events left by the row updates above.
        migrations.RunPython(fill_search_fields, migrations.RunPython.noop),
    ]

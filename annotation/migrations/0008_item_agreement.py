"""Items store their agreement (the explorer filters and sorts by it); existing rows are
filled here in chunks of item ids, with the same function the writers use."""

from django.db import migrations, models

from annotation.agreement_item import item_agreement, pairwise_choice

CHUNK = 2000


def fill_agreement(apps, schema_editor):
    Item = apps.get_model("annotation", "Item")
    PairwiseAnswer = apps.get_model("annotation", "PairwiseAnswer")
    last = 0
    while True:
        ids = list(
            Item.objects.filter(id__gt=last).order_by("id").values_list("id", flat=True)[:CHUNK]
        )
        if not ids:
            break
        votes: dict[int, list] = {}
        for item_id, question_id, chosen_id, tie in PairwiseAnswer.objects.filter(
            annotation__item_id__gte=ids[0],
            annotation__item_id__lte=ids[-1],
            annotation__source="human",
        ).values_list("annotation__item_id", "question_id", "chosen_id", "tie"):
            votes.setdefault(item_id, []).append(
                (question_id, pairwise_choice(chosen_id=chosen_id, tie=tie))
            )
        rows = []
        for item_id, item_votes in votes.items():
            figure = item_agreement(item_votes)
            if figure is not None:
                rows.append(Item(pk=item_id, agreement=figure))
        Item.objects.bulk_update(rows, ["agreement"], batch_size=1000)
        last = ids[-1]


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_item_search_gin"),
    ]

    operations = [
        migrations.AddField(
            model_name="item",
            name="agreement",
            field=models.FloatField(
                blank=True,
                editable=False,
                help_text="Share of human pairwise judgements matching each question's "
                "majority; empty under two judgements.",
                null=True,
            ),
        ),
        # The index comes before the row updates: PostgreSQL refuses CREATE INDEX on a
        # table with trigger events still pending from updates in the same transaction.
        migrations.AddIndex(
            model_name="item",
            index=models.Index(fields=["project", "agreement"], name="item_project_agreement_idx"),
        ),
        migrations.RunPython(fill_agreement, migrations.RunPython.noop),
    ]

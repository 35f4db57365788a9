"""Keeping items' titles and search documents in step with their content."""

from __future__ import annotations

from django.db import transaction

from annotation.models import Item, Project, Response
from annotation.search import item_search_text, item_title

CHUNK = 2000


@transaction.atomic
def items_search_refresh(*, project: Project | None = None) -> int:
    """Rebuild titles and search documents from the stored conversations and responses.

    For rows written without the import writer (fixtures, shell, older data);
    returns how many items were refreshed.
    """
    base = Item.objects.order_by("id")
    if project is not None:
        base = base.filter(project=project)
    last, total = 0, 0
    while True:
        rows = list(base.filter(id__gt=last).only("id", "external_id", "conversation")[:CHUNK])
        if not rows:
            return total
        texts: dict[int, list[str]] = {}
        for item_id, text in (
            Response.objects.filter(item_id__in=[row.id for row in rows])
            .order_by("item_id", "position")
            .values_list("item_id", "text")
        ):
            texts.setdefault(item_id, []).append(text)
        for row in rows:
            row.title = item_title(row.conversation, row.external_id)
            row.search_text = item_search_text(row.conversation, texts.get(row.id, []))
        Item.objects.bulk_update(rows, ["title", "search_text"])
        total += len(rows)
        last = rows[-1].id

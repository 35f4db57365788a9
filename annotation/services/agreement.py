"""Keeping ``Item.agreement`` in step with the items' human pairwise answers."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from annotation.agreement_item import item_agreement, pairwise_choice
from annotation.models import Item, PairwiseAnswer, Source

CHUNK = 2000


@transaction.atomic(savepoint=False)
def item_agreement_refresh(*, item_ids: Iterable[int]) -> None:
    """Recompute and store the agreement of ``item_ids`` (see ``annotation.agreement_item``).

    Three queries per chunk of items: lock their rows, read their human pairwise votes,
    one UPDATE. Writers call it inside their own transaction after writing answers, so a
    committed item's stored figure always matches its answers. Items without votes get
    ``NULL``.

    The row lock comes before the read on purpose: two people submitting on one item at
    once would otherwise each count only their own new vote and the later commit would
    store a figure missing the other's. The second waits for the first to commit, and
    under READ COMMITTED its read then sees both votes. Rows are locked in id order, so
    writers refreshing overlapping sets cannot deadlock on them.
    """
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        list(
            Item.objects.select_for_update(no_key=True)
            .filter(pk__in=chunk)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        votes: dict[int, list[tuple[int, int | None]]] = {item_id: [] for item_id in chunk}
        for item_id, question_id, chosen_id, tie in PairwiseAnswer.objects.filter(
            annotation__item_id__in=chunk, annotation__source=Source.HUMAN
        ).values_list("annotation__item_id", "question_id", "chosen_id", "tie"):
            votes[item_id].append((question_id, pairwise_choice(chosen_id=chosen_id, tie=tie)))
        figures = {item_id: item_agreement(item_votes) for item_id, item_votes in votes.items()}
        if len(figures) == 1:
            ((item_id, figure),) = figures.items()
            Item.objects.filter(pk=item_id).update(agreement=figure)
        else:
            Item.objects.bulk_update(
                [Item(pk=item_id, agreement=figure) for item_id, figure in figures.items()],
                ["agreement"],
                batch_size=CHUNK,
            )

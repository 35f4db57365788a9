"""Migration 0004 maps review entries stored with free-text sources onto the typed ones."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BEFORE = [("curation", "0003_review_entry"), ("annotation", "0012_annotator_feedback")]
AFTER = [("curation", "0004_adjudication")]


def test_old_sources_become_explorer_and_suspects_and_duplicates_close():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    project = old.get_model("annotation", "Project").objects.create(name="old")
    Item = old.get_model("annotation", "Item")
    first = Item.objects.create(project=project, external_id="a")
    second = Item.objects.create(project=project, external_id="b")
    job = old.get_model("curation", "Job").objects.create(project=project, kind="suspects")
    Entry = old.get_model("curation", "ReviewEntry")
    Entry.objects.create(item=first, source="bulk action", reason="look")
    Entry.objects.create(item=first, source="bulk action", reason="again")
    Entry.objects.create(item=second, source=f"job {job.id}")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = list(
        new.get_model("curation", "ReviewEntry")
        .objects.order_by("id")
        .values_list("item_id", "source", "job_id", "resolved_at")
    )
    assert [(i, s, j) for i, s, j, _ in rows] == [
        (first.id, "explorer", None),
        (first.id, "explorer", None),
        (second.id, "suspects", job.id),
    ]
    # The later duplicate open entry was closed so the constraint could be added.
    assert [r is None for *_, r in rows] == [True, False, True]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

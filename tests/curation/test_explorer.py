"""The explorer's query builder, bulk actions, search and similar items.

Every filter is checked against the expected item ids computed in Python from the
rows the test generated itself, not from another query.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
from django.utils import timezone

from annotation.errors import ValidationFailed
from annotation.models import Annotation, Item, Response, Role
from annotation.pseudonyms import pseudonym
from annotation.services import items_import
from annotation.services.search import items_search_refresh
from curation.explorer import (
    ExplorerQuery,
    explorer_bulk_apply,
    explorer_count,
    explorer_items,
    explorer_page,
    explorer_rows,
    item_similar_list,
)
from curation.models import (
    Artifact,
    DatasetVersion,
    Job,
    JobKind,
    JobStatus,
    PairScore,
    ReviewEntry,
)
from curation.pairs import Selection
from curation.pairs.loading import iter_items
from curation.services import job_create
from curation.storage import absolute, save_array_atomic
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, make_questions

pytestmark = pytest.mark.django_db

ANNOTATORS = ["u1", "u2", "u3", "u4"]
TAGS = ["math", "code", "chat"]
WORDS = ["apple", "banana", "cherry", "violin", "glacier", "harbour"]


def _generated_rows(seed: int = 7, count: int = 40) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        labels = []
        for handle in rng.sample(ANNOTATORS, rng.randint(0, 4)):
            tie = rng.random() < 0.15
            chosen = rng.randint(0, 1)
            labels.append(
                {
                    "annotator": handle,
                    "answers": [
                        {
                            "question": "preference",
                            "chosen": chosen,
                            "rejected": 1 - chosen,
                            "tie": tie,
                        }
                    ],
                }
            )
        if rng.random() < 0.3:
            labels.append(
                {
                    "source": "ai",
                    "judge": "judge-1",
                    "answers": [{"question": "preference", "chosen": 0, "rejected": 1}],
                }
            )
        word = WORDS[n % len(WORDS)]
        rows.append(
            {
                "external_id": f"gen-{n}",
                "prompt": f"Question {n} about the {word} and more words here",
                "responses": [f"An answer mentioning {word}s", f"Reply number {n}"],
                "tags": rng.sample(TAGS, rng.randint(0, 2)),
                "metadata": {"domain": rng.choice(["code", "chat"]), "level": rng.randint(1, 3)},
                "is_gold": rng.random() < 0.1,
                "priority": float(rng.randint(0, 3)),
                "annotations": labels,
            }
        )
    return rows


def _human_agreement(row: dict) -> float | None:
    votes = Counter()
    for label in row["annotations"]:
        if label.get("source") == "ai":
            continue
        answer = label["answers"][0]
        votes["tie" if answer.get("tie") else answer["chosen"]] += 1
    total = sum(votes.values())
    return max(votes.values()) / total if total >= 2 else None


@pytest.fixture
def world(alice):
    project = ProjectFactory(created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    make_questions(
        project, [{"kind": "pairwise", "name": "preference", "config": {"allow_tie": True}}]
    )
    rows = _generated_rows()
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")
    ids = dict(Item.objects.filter(project=project).values_list("external_id", "id"))
    return project, rows, ids


def _ids(project, **params) -> set[int]:
    query = ExplorerQuery.from_params({k: str(v) for k, v in params.items()})
    return set(explorer_items(project=project, query=query).values_list("id", flat=True))


def _expected(rows, ids, keep) -> set[int]:
    return {ids[row["external_id"]] for row in rows if keep(row)}


def test_tag_metadata_gold_and_count_filters_match_the_generated_rows(world):
    project, rows, ids = world
    assert _ids(project, tag="math") == _expected(rows, ids, lambda r: "math" in r["tags"])
    assert _ids(project, meta="domain=code") == _expected(
        rows, ids, lambda r: r["metadata"]["domain"] == "code"
    )
    assert _ids(project, meta="level=2") == _expected(
        rows, ids, lambda r: r["metadata"]["level"] == 2
    )
    assert _ids(project, gold="yes") == _expected(rows, ids, lambda r: r["is_gold"])
    assert _ids(project, gold="no") == _expected(rows, ids, lambda r: not r["is_gold"])
    assert _ids(project, annotations_min=2, annotations_max=3) == _expected(
        rows, ids, lambda r: 2 <= len(r["annotations"]) <= 3
    )
    human = [r for r in rows if any(a.get("source") != "ai" for a in r["annotations"])]
    assert _ids(project, source="human") == _expected(human, ids, lambda r: True)
    assert _ids(project, source="ai", annotations_min=1) == _expected(
        rows, ids, lambda r: any(a.get("source") == "ai" for a in r["annotations"])
    )
    combined = _ids(project, tag="code", gold="no", annotations_min=1)
    assert combined == _expected(
        rows,
        ids,
        lambda r: "code" in r["tags"] and not r["is_gold"] and len(r["annotations"]) >= 1,
    )


def test_agreement_and_annotator_filters_match_the_generated_rows(world):
    project, rows, ids = world
    expected = _expected(
        rows, ids, lambda r: (a := _human_agreement(r)) is not None and 0.6 <= a <= 1.0
    )
    assert _ids(project, agreement_min=0.6, agreement_max=1) == expected
    low = _expected(rows, ids, lambda r: (a := _human_agreement(r)) is not None and a <= 0.5)
    assert _ids(project, agreement_max=0.5) == low
    user_id = Annotation.objects.filter(project=project, annotator__username__endswith="u2")
    user_id = user_id.values_list("annotator_id", flat=True).first()
    name = pseudonym(user_id, str(project.id))
    assert _ids(project, annotator=name) == _expected(
        rows, ids, lambda r: any(a.get("annotator") == "u2" for a in r["annotations"])
    )
    assert _ids(project, annotator="ann-nobody") == set()


def test_sorting_by_agreement_and_annotations_puts_missing_values_last(world):
    project, rows, ids = world
    order = list(
        explorer_items(project=project, query=ExplorerQuery(sort="-annotations")).values_list(
            "id", flat=True
        )
    )
    counts = {ids[r["external_id"]]: len(r["annotations"]) for r in rows}
    assert [counts[i] for i in order] == sorted(counts.values(), reverse=True)
    by_agreement = list(
        explorer_items(project=project, query=ExplorerQuery(sort="agreement")).values_list(
            "id", flat=True
        )
    )
    values = {ids[r["external_id"]]: _human_agreement(r) for r in rows}
    present = [values[i] for i in by_agreement if values[i] is not None]
    assert present == sorted(present)
    assert all(values[i] is None for i in by_agreement[len(present) :])


def _scored(project, rows, ids) -> tuple[Job, dict[int, tuple[bool, float, bool]]]:
    job = Job.objects.create(
        project=project, kind=JobKind.FIFA, status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    rng = random.Random(3)
    truth = {}
    for row in rows[::2]:
        item_id = ids[row["external_id"]]
        responses = list(Response.objects.filter(item_id=item_id).order_by("position"))
        kept, importance, suspect = rng.random() < 0.5, rng.uniform(-1, 1), rng.random() < 0.3
        truth[item_id] = (kept, importance, suspect)
        PairScore.objects.create(
            job=job,
            item_id=item_id,
            pair_key=f"{item_id}",
            kind="pairwise",
            question="preference",
            chosen_response=responses[0],
            rejected_response=responses[1],
            margin=0.1,
            prob_chosen=0.5,
            quality=0.5,
            diversity=0.5,
            importance=importance,
            kept=kept,
            suspect=suspect,
        )
    return job, truth


def test_score_filters_read_the_latest_scoring_job_only(world):
    project, rows, ids = world
    old, _ = _scored(project, rows[1::2], ids)  # an older job over other items
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timezone.timedelta(days=1))
    _, truth = _scored(project, rows, ids)
    assert _ids(project, kept="yes") == {i for i, (k, _, _) in truth.items() if k}
    assert _ids(project, suspect="yes") == {i for i, (_, _, s) in truth.items() if s}
    assert _ids(project, importance_min=0, importance_max=0.5) == {
        i for i, (_, imp, _) in truth.items() if 0 <= imp <= 0.5
    }
    page = explorer_rows(project=project, items=list(Item.objects.filter(id__in=truth)))
    assert {r["id"]: r["importance"] for r in page} == pytest.approx(
        {i: imp for i, (_, imp, _) in truth.items()}
    )


def test_rows_show_titles_counts_and_agreement(world):
    project, rows, ids = world
    items = list(Item.objects.filter(project=project).order_by("id"))
    shown = {r["id"]: r for r in explorer_rows(project=project, items=items)}
    for row in rows:
        got = shown[ids[row["external_id"]]]
        assert got["title"].startswith(row["prompt"].split()[0])
        assert "gen-" not in got["title"]
        assert got["responses"] == 2
        humans = sum(1 for a in row["annotations"] if a.get("source") != "ai")
        assert (got["annotations_human"], got["annotations_ai"]) == (
            humans,
            len(row["annotations"]) - humans,
        )
        assert got["agreement"] == pytest.approx(_human_agreement(row))


def test_search_finds_prompts_and_responses_on_sqlite_and_postgres(world):
    project, rows, ids = world
    assert _ids(project, q="violin") == _expected(rows, ids, lambda r: "violin" in r["prompt"])
    # A response-only word ("answer") and words from both.
    assert _ids(project, q="answer") == set(ids.values())
    assert _ids(project, q="Reply 7") | _ids(project, q="number 7") >= {ids["gen-7"]}
    assert _ids(project, q="zeppelin") == set()


def test_search_follows_an_updated_import(world):
    project, rows, ids = world
    edited = dict(rows[0], prompt="A brand new question on zeppelins")
    items_import(project=project, lines=[json.dumps(edited)], fmt="native", on_conflict="update")
    assert _ids(project, q="zeppelins") == {ids["gen-0"]}
    assert Item.objects.get(pk=ids["gen-0"]).title.startswith("A brand new question")


@pytest.mark.postgres
def test_postgres_search_uses_the_stored_vector(world):
    project, rows, ids = world
    assert Item.objects.filter(project=project, search_vector__isnull=True).count() == 0
    # Stemming: "violins" finds the "violin" prompts through the english configuration.
    assert _ids(project, q="violins") == _expected(rows, ids, lambda r: "violin" in r["prompt"])


def test_items_written_outside_the_import_are_found_after_a_reindex(project):
    item = ItemFactory(
        project=project,
        conversation=[{"role": "user", "content": "Tell me about glaciers please"}],
        responses=["Ice rivers.", "No."],
    )
    assert _ids(project, q="glaciers") == set()
    items_search_refresh(project=project)
    assert _ids(project, q="glaciers") == {item.id}
    item.refresh_from_db()
    assert item.title == "Tell me about glaciers please"


def test_a_bad_filter_names_its_parameter():
    for params, field in [
        ({"gold": "maybe"}, "gold"),
        ({"agreement_min": "2"}, "agreement_min"),
        ({"annotations_min": "x"}, "annotations_min"),
        ({"meta": "no-equals"}, "meta"),
        ({"sort": "secret"}, "sort"),
        ({"source": "robot"}, "source"),
        ({"importance_max": "nan"}, "importance_max"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            ExplorerQuery.from_params(params)
        assert caught.value.field == field


def test_a_bulk_action_on_a_whole_filter_touches_every_matching_item_not_just_a_page(world, alice):
    project, rows, ids = world
    query = ExplorerQuery.from_params({"tag": "math"})
    expected = _expected(rows, ids, lambda r: "math" in r["tags"])
    assert explorer_bulk_apply(
        project=project, user=alice, action="tag_add", value="look", query=query, dry_run=True
    ) == len(expected)
    assert not Item.objects.filter(tags__icontains="look").exists()
    count = explorer_bulk_apply(
        project=project, user=alice, action="tag_add", value="look", query=query
    )
    assert count == len(expected)
    tagged = {i.id for i in Item.objects.filter(project=project) if "look" in i.tags}
    assert tagged == expected
    explorer_bulk_apply(project=project, user=alice, action="priority", value="9", query=query)
    assert set(Item.objects.filter(priority=9).values_list("id", flat=True)) == expected
    explorer_bulk_apply(project=project, user=alice, action="review", value="odd", query=query)
    explorer_bulk_apply(project=project, user=alice, action="review", value="again", query=query)
    entries = ReviewEntry.objects.filter(item__project=project)
    assert sorted(entries.values_list("item_id", flat=True)) == sorted(expected)
    assert set(entries.values_list("source", "created_by")) == {("explorer", alice.id)}
    explorer_bulk_apply(
        project=project,
        user=alice,
        action="tag_remove",
        value="math",
        query=None,
        item_ids=sorted(expected),
    )
    assert _ids(project, tag="math") == set()


def test_a_bulk_action_ignores_ids_of_another_project(world, alice):
    project, rows, ids = world
    other = ItemFactory(project=ProjectFactory(created_by=alice))
    count = explorer_bulk_apply(
        project=project, user=alice, action="exclude", item_ids=[other.id, ids["gen-1"]]
    )
    assert count == 1
    other.refresh_from_db()
    assert other.excluded is False
    with pytest.raises(ValidationFailed):
        explorer_bulk_apply(
            project=project, user=alice, action="priority", value="inf", item_ids=[ids["gen-1"]]
        )


def _exported_ids(project, alice, capture) -> set[str]:
    with capture(execute=True):
        job = job_create(
            project=project,
            kind=JobKind.EXPORT,
            params={"format": "trl_preference", "test_fraction": 0, "outputs": ["jsonl"]},
            user=alice,
        )
    version = DatasetVersion.objects.get(job=job)
    path = absolute(version.path) / "jsonl" / "train.jsonl"
    return {json.loads(line)["external_id"] for line in path.read_text().splitlines()}


def test_an_excluded_item_is_not_exported(
    world, alice, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.BALLOT_STORAGE_ROOT = str(tmp_path)
    project, rows, ids = world
    before = _exported_ids(project, alice, django_capture_on_commit_callbacks)
    excluded = sorted(before)[:2]
    explorer_bulk_apply(
        project=project, user=alice, action="exclude", item_ids=[ids[e] for e in excluded]
    )
    after = _exported_ids(project, alice, django_capture_on_commit_callbacks)
    assert excluded and after == before - set(excluded)
    # The pairs of every other item are still there: only the excluded items left.
    assert {row.id for row in iter_items(project=project, selection=Selection())}.isdisjoint(
        {ids[e] for e in excluded}
    )


def _embedded(project) -> Job:
    """An embed job whose matrix puts each prompt at a known angle."""
    from curation.jobs.kinds.embed import project_texts

    texts = project_texts(project)
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(len(texts), 8)).astype(np.float32)
    job = Job.objects.create(
        project=project,
        kind=JobKind.EMBED,
        status=JobStatus.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    relative = f"projects/{project.id}/jobs/{job.id}/embeddings.npy"
    path = save_array_atomic(relative, matrix)
    Artifact.objects.create(
        project=project,
        job=job,
        kind="embeddings",
        path=relative,
        sha256="x",
        size=path.stat().st_size,
    )
    return job, texts, matrix


def test_similar_items_are_the_nearest_prompts_by_cosine(world, tmp_path, settings):
    settings.BALLOT_STORAGE_ROOT = str(tmp_path)
    project, rows, ids = world
    job, texts, matrix = _embedded(project)
    from curation.conversation import conversation_text

    item = Item.objects.get(pk=ids["gen-5"])
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    index = {t: n for n, t in enumerate(texts)}
    others = Item.objects.filter(project=project).exclude(pk=item.pk)
    cosine = {
        other.id: float(
            unit[index[conversation_text(other.conversation)]]
            @ unit[index[conversation_text(item.conversation)]]
        )
        for other in others
    }
    expected = sorted(cosine, key=lambda i: -cosine[i])[:5]
    found = item_similar_list(project=project, item=item, limit=5)
    assert [s.item.id for s in found] == expected
    assert [s.similarity for s in found] == pytest.approx([cosine[i] for i in expected], abs=1e-5)


# --------------------------------------------------------------------------- pages and counts


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "-annotations"},
        {"sort": "agreement", "gold": "no"},
        {"tag": "code", "annotations_min": "1", "sort": "-priority"},
    ],
)
def test_pages_walk_every_matching_item_once_in_order(world, params):
    project, rows, ids = world
    query = ExplorerQuery.from_params(params)
    ordered = list(explorer_items(project=project, query=query).values_list("id", flat=True))
    seen, number = [], 1
    while True:
        page = explorer_page(
            queryset=explorer_items(project=project, query=query), number=number, size=7
        )
        seen += [item.id for item in page.items]
        assert page.count == len(ordered) and page.count_exact  # under the exact limit
        if not page.has_next:
            break
        number += 1
    assert seen == ordered
    assert number == max(1, -(-len(ordered) // 7)) == page.pages


def test_a_count_above_the_limit_is_postgresql_s_estimate_and_paging_stays_exact(world, settings):
    from django.db import connection

    project, rows, ids = world
    settings.BALLOT_EXPLORER_EXACT_COUNT = 5
    items = explorer_items(project=project, query=ExplorerQuery())
    count, exact = explorer_count(items)
    if connection.vendor != "postgresql":
        assert (count, exact) == (len(rows), True)  # SQLite counts exactly
        return
    assert not exact and count >= 6
    # Whatever the estimate, the last page is found by its rows, not by the count.
    last = explorer_page(queryset=items, number=-(-len(rows) // 7), size=7)
    assert not last.has_next and last.items
    assert last.count >= (last.number - 1) * 7 + len(last.items)
    narrow = explorer_items(project=project, query=ExplorerQuery(tag="math", gold=True))
    expected = _expected(rows, ids, lambda r: "math" in r["tags"] and r["is_gold"])
    assert len(expected) <= 5
    assert explorer_count(narrow) == (len(expected), True)

"""Comparing two dataset versions: counts against an independent reading of both versions' files."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from django.core.cache import cache

from annotation.models import Annotation, Item, Membership, PairwiseAnswer, Role, Source
from curation.models import DatasetVersion
from curation.services import job_create
from curation.services.dataset_compare import dataset_versions_compare
from curation.storage import absolute
from tests.curation.test_charts import build_quality_project
from tests.factories import ItemFactory, UserFactory


def publish(project, user, **params) -> DatasetVersion:
    job = job_create(
        project=project,
        kind="export",
        params={"format": "trl_preference", "outputs": ["jsonl"], "test_fraction": 0.25, **params},
        user=user,
    )
    job.refresh_from_db()
    assert job.status == "succeeded", (job.status, job.error)
    return DatasetVersion.objects.get(job=job)


def rows_of(version: DatasetVersion) -> list[dict]:
    rows = []
    for entry in version.manifest["files"]:
        if entry["path"].endswith(".jsonl"):
            text = absolute(f"{version.path}/{entry['path']}").read_text(encoding="utf-8")
            rows.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return rows


def independent_counts(a_rows: list[dict], b_rows: list[dict]) -> dict:
    """Keys are (prompt, {two responses}); a key's label is the multiset of its chosen texts.

    One item gives the same pair from its pairwise and its ranking question, so a key
    can hold several rows; rows added/removed count rows, relabelled/unchanged count keys.
    """

    def index(rows):
        keyed: dict = defaultdict(Counter)
        for r in rows:
            keyed[(r["prompt"], frozenset((r["chosen"], r["rejected"])))][r["chosen"]] += 1
        return keyed

    a, b = index(a_rows), index(b_rows)
    both = a.keys() & b.keys()
    return {
        "rows_added": sum(sum(b[k].values()) for k in b.keys() - a.keys()),
        "rows_removed": sum(sum(a[k].values()) for k in a.keys() - b.keys()),
        "relabelled": sum(1 for k in both if a[k] != b[k]),
        "unchanged": sum(1 for k in both if a[k] == b[k]),
    }


def flip(item: Item) -> None:
    for answer in PairwiseAnswer.objects.filter(annotation__item=item):
        answer.chosen_id, answer.rejected_id = answer.rejected_id, answer.chosen_id
        answer.tie = False
        answer.save(update_fields=["chosen", "rejected", "tie"])


@pytest.fixture
def two_versions(project, alice):
    cache.clear()
    world = build_quality_project(project, items=10)
    first = publish(project, alice)
    items = world["items"]
    flip(items[0])
    flip(items[1])
    items[2].delete()
    extra = ItemFactory(project=project, responses=["New first.", "New second."])
    responses = list(extra.responses.order_by("position"))
    for user in world["users"][:3]:
        annotation = Annotation.objects.create(
            project=project, item=extra, annotator=user, source=Source.HUMAN
        )
        PairwiseAnswer.objects.create(
            annotation=annotation,
            question=project.questions.get(name="preference"),
            chosen=responses[0],
            rejected=responses[1],
        )
    second = publish(project, alice, seed=3)
    return first, second


def test_the_comparison_matches_an_independent_reading_of_both_versions(project, two_versions):
    first, second = two_versions
    expected = independent_counts(rows_of(first), rows_of(second))
    result = dataset_versions_compare(project=project, a_id=first.id, b_id=second.id)
    got = {k: result[k] for k in expected}
    assert got == expected
    assert expected["rows_added"] >= 1 and expected["rows_removed"] >= 1
    assert expected["relabelled"] >= 1
    assert result["a"]["rows"] == len(rows_of(first))
    assert result["examples"]["relabelled"]


def test_a_version_compared_with_itself_has_no_changes(project, two_versions):
    first, _ = two_versions
    result = dataset_versions_compare(project=project, a_id=first.id, b_id=first.id)
    assert (result["rows_added"], result["rows_removed"], result["relabelled"]) == (0, 0, 0)
    assert result["unchanged"] == independent_counts(rows_of(first), rows_of(first))["unchanged"]


def test_the_api_serves_the_comparison_to_curators(api, project, two_versions):
    first, second = two_versions
    curator = UserFactory(username="carol")
    Membership.objects.create(user=curator, project=project, role=Role.CURATOR)
    url = f"/api/v1/projects/{project.id}/datasets/compare/?a={first.id}&b={second.id}"
    response = api(curator).get(url)
    assert response.status_code == 200, response.content
    expected = independent_counts(rows_of(first), rows_of(second))
    assert {k: response.json()[k] for k in expected} == expected


def test_the_api_refuses_annotators_outsiders_and_bad_ids(
    api, bob, charlie, alice, project, two_versions
):
    first, second = two_versions
    url = f"/api/v1/projects/{project.id}/datasets/compare/?a={first.id}&b={second.id}"
    assert api(bob).get(url).status_code == 403
    assert api(charlie).get(url).status_code == 404
    bad = api(alice).get(f"/api/v1/projects/{project.id}/datasets/compare/?a=x&b={second.id}")
    assert bad.status_code == 400 and bad.json()["field"] == "a"
    superscript = api(alice).get(f"/api/v1/projects/{project.id}/datasets/compare/?a=%C2%B2&b=1")
    assert superscript.status_code == 400 and superscript.json()["field"] == "a"
    missing = api(alice).get(
        f"/api/v1/projects/{project.id}/datasets/compare/?a=999999&b={second.id}"
    )
    assert missing.status_code == 404


def test_versions_of_different_formats_are_refused_naming_b(api, alice, project, two_versions):
    first, _ = two_versions
    pointwise = publish(project, alice, format="ranked_list")
    response = api(alice).get(
        f"/api/v1/projects/{project.id}/datasets/compare/?a={first.id}&b={pointwise.id}"
    )
    assert response.status_code == 400 and response.json()["field"] == "b"


@pytest.mark.parametrize("path", ["quality/", "datasets/", "datasets/compare/"])
def test_the_workspace_pages_are_404_for_outsiders_and_403_for_annotators(
    client, bob, charlie, project, path
):
    client.force_login(charlie)
    assert client.get(f"/projects/{project.id}/{path}").status_code == 404
    client.force_login(bob)
    assert client.get(f"/projects/{project.id}/{path}").status_code == 403


def test_the_compare_page_refuses_ids_the_database_cannot_hold(client, alice, project):
    client.force_login(alice)
    for bad in ("%C2%B2", "9" * 30, "-1", "x"):
        response = client.get(f"/projects/{project.id}/datasets/compare/?a={bad}&b=1")
        assert response.status_code == 400, bad
        assert b"Choose two versions" in response.content


def test_the_datasets_page_shows_a_running_export_with_its_progress(client, alice, project):
    from curation.models import Job

    running = Job.objects.create(
        project=project, kind="export", status="running", progress=0.4, message="200/500 items"
    )
    Job.objects.create(project=project, kind="export", status="failed")
    client.force_login(alice)
    page = client.get(f"/projects/{project.id}/datasets/").content.decode()
    assert f'data-job-url="/api/v1/projects/{project.id}/jobs/{running.id}/"' in page
    assert 'value="0.4"' in page and "200/500 items" in page
    assert page.count("data-job-url=") == 1

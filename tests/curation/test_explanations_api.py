"""The explanations API and the two actions on a feature: permissions, shapes, bad input, idempotency.

The explanation here is stored through the job's own storage service from a report
written out by hand (the shape ``Explanation.to_dict()`` has), so these tests pin the
application side; ``test_explain_job.py`` runs the real core end to end.
"""

from __future__ import annotations

import json

import pytest

from annotation.models import Role
from curation.models import (
    DatasetVersion,
    ExplanationActivation,
    Job,
    JobKind,
    JobStatus,
    ReviewEntry,
)
from curation.services import job_create
from curation.storage import absolute
from tests.api_mixins import ScopedEndpointTests
from tests.explanation_world import N_ITEMS, PHRASE, store_explanation
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.fixture
def explained(project) -> Job:
    return store_explanation(project)


def base(world) -> str:
    if not hasattr(world, "explain_job"):
        world.explain_job = store_explanation(world.project)
    return f"/api/v1/projects/{world.project.id}/explanations/"


class TestExplanationList(ScopedEndpointTests):
    def url(self, world):
        return base(world)


class TestExplanationDetail(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}{world.explain_job.id}/"


class TestFeatureDetail(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}{world.explain_job.id}/features/0/"


class TestFeatureGroups(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}{world.explain_job.id}/features/0/groups/"


class TestFeatureReview(ScopedEndpointTests):
    method = "post"

    def url(self, world):
        return f"{base(world)}{world.explain_job.id}/features/0/review/"

    def payload(self, world):
        return {"top": 3}


@pytest.mark.parametrize("suffix", ["", "{job}/", "{job}/features/0/", "{job}/features/0/groups/"])
def test_an_annotator_of_the_project_gets_403(project, bob, api, explained, suffix):
    url = f"/api/v1/projects/{project.id}/explanations/" + suffix.format(job=explained.id)
    assert api(bob).get(url).status_code == 403
    review = f"/api/v1/projects/{project.id}/explanations/{explained.id}/features/0/review/"
    assert api(bob).post(review, {"top": 1}, format="json").status_code == 403


def test_the_detail_ranks_features_by_the_size_of_their_coefficient(project, alice, api, explained):
    data = api(alice).get(f"/api/v1/projects/{project.id}/explanations/{explained.id}/").json()

    assert [f["index"] for f in data["features"]] == [0, 1, 2]
    assert [f["rank"] for f in data["features"]] == [1, 2, 3]
    top, named, empty = data["features"]
    assert top["significant"] is True and named["significant"] is False
    assert top["description"] == "more “sincerely hope”; less “sorry”"
    assert named["description"] == "hedging"
    # NaN is stored as null, never as an invalid JSON number.
    assert empty["coef"] is None
    assert data["probes"]["share_explained"] == {"5": 0.7, "10": 0.8}


def test_only_nonzero_activations_are_stored(explained):
    rows = ExplanationActivation.objects.filter(explanation__job=explained)
    assert not rows.filter(activation=0).exists()
    assert set(rows.values_list("feature", flat=True)) == {0, 1}


def test_a_feature_reads_each_example_from_its_high_side_with_the_spans_as_offsets(
    project, alice, api, explained
):
    data = (
        api(alice)
        .get(f"/api/v1/projects/{project.id}/explanations/{explained.id}/features/0/")
        .json()
    )

    assert data["examples"]
    assert {e["swapped"] for e in data["examples"]} == {True, False}
    for example in data["examples"]:
        left, right = example["left"], example["right"]
        # The phrase is on the high side whichever of A and B it was.
        assert PHRASE in left["text"] and PHRASE not in right["text"]
        assert left["side"] == ("B" if example["swapped"] else "A")
        assert left["preferred"] is True and right["preferred"] is False
        highs = [s for s in left["spans"] if s["side"] == "high"]
        assert [left["text"][s["start"] : s["end"]].lower() for s in highs] == ["sincerely hope"]
    assert data["group_effects"][0]["value"] == "US"


def test_an_unknown_feature_or_a_job_that_is_not_an_explanation_is_404(
    project, alice, api, explained
):
    other = Job.objects.create(project=project, kind=JobKind.FIFA, status=JobStatus.SUCCEEDED)
    base_url = f"/api/v1/projects/{project.id}/explanations/"
    assert api(alice).get(f"{base_url}{explained.id}/features/7/").status_code == 404
    assert api(alice).get(f"{base_url}{other.id}/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "top"),
        ({"top": 0}, "top"),
        ({"top": "many"}, "top"),
        ({"top": 10_001}, "top"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_bad_review_input_is_a_400_naming_the_field(project, alice, api, explained, body, field):
    url = f"/api/v1/projects/{project.id}/explanations/{explained.id}/features/0/review/"
    response = api(alice).post(url, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not ReviewEntry.objects.exists()


def test_sending_a_feature_to_review_is_idempotent_and_names_the_feature(
    project, alice, api, explained
):
    url = f"/api/v1/projects/{project.id}/explanations/{explained.id}/features/0/review/"
    first = api(alice).post(url, {"top": 4}, format="json").json()
    again = api(alice).post(url, {"top": 4}, format="json").json()

    assert first == {"pairs": 4, "items": 4, "added": 4}
    assert again == {"pairs": 4, "items": 4, "added": 0}
    entries = ReviewEntry.objects.filter(source="explanation")
    assert entries.count() == 4
    for entry in entries:
        assert entry.reason.startswith(f"feature 0 of explanation job {explained.id}")
        assert entry.job_id == explained.id and entry.scores["feature"] == 0
        assert PHRASE in entry.item.responses.get(id=_high_response(entry)).text


def _high_response(entry) -> int:
    """The response of the entry's pair that carries the feature."""
    _, _, low, high = entry.scores["pairs"][0]["pair_ref"].split(":")
    texts = dict(entry.item.responses.values_list("id", "text"))
    return next(int(r) for r in (low, high) if PHRASE in texts[int(r)])


def test_a_threshold_selects_every_pair_whose_activation_reaches_it(project, alice, api, explained):
    url = f"/api/v1/projects/{project.id}/explanations/{explained.id}/features/1/review/"
    response = api(alice).post(url, {"threshold": 0.5}, format="json")
    assert response.json() == {"pairs": 0, "items": 0, "added": 0}
    response = api(alice).post(url, {"threshold": 0.05}, format="json")
    assert response.json()["pairs"] == N_ITEMS


def _export_rows(job: Job) -> list[dict]:
    version = DatasetVersion.objects.get(job=job)
    folder = absolute(version.path)
    lines = []
    for path in sorted(folder.rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return lines


def test_an_export_leaves_out_the_pairs_where_the_feature_is_most_active(project, explained):
    from curation.tasks import run_job

    full = job_create(project=project, kind=JobKind.EXPORT, params={"format": "trl_preference"})
    run_job.apply(args=[full.id])
    without = job_create(
        project=project,
        kind=JobKind.EXPORT,
        params={
            "format": "trl_preference",
            "explanation_job": explained.id,
            "explanation_feature": 0,
            "explanation_threshold": 1.0,
        },
    )
    run_job.apply(args=[without.id])

    everything, kept = _export_rows(full), _export_rows(without)
    planted = [r for r in everything if PHRASE in r["chosen"] or PHRASE in r["rejected"]]
    assert planted and len(kept) == len(everything) - len(planted)
    assert not any(PHRASE in r["chosen"] or PHRASE in r["rejected"] for r in kept)
    manifest = DatasetVersion.objects.get(job=without).manifest
    assert manifest["filters"]["explanation"]["feature"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"explanation_feature": 0}, "params.explanation_job"),
        ({"explanation_job": "{job}"}, "params.explanation_feature"),
        ({"explanation_job": "{job}", "explanation_feature": 9}, "params.explanation_feature"),
        ({"explanation_job": "{job}", "explanation_feature": 0}, "params.explanation_top"),
        (
            {"explanation_job": "{job}", "explanation_feature": 0, "explanation_top": 0},
            "params.explanation_top",
        ),
        (
            {"explanation_job": "{job}", "explanation_feature": 0, "explanation_threshold": 0},
            "params.explanation_threshold",
        ),
        ({"explanation_job": "{other}", "explanation_feature": 0}, "params.explanation_job"),
        (
            {
                "explanation_job": "{job}",
                "explanation_feature": 0,
                "explanation_top": 3,
                "format": "pointwise",
            },
            "params.explanation_job",
        ),
    ],
)
def test_bad_explanation_filters_on_an_export_are_a_400_naming_the_key(
    project, alice, api, explained, params, field
):
    other = Job.objects.create(project=project, kind=JobKind.FIFA, status=JobStatus.SUCCEEDED)
    values = {
        key: (
            int(value.format(job=explained.id, other=other.id))
            if isinstance(value, str) and value.startswith("{")
            else value
        )
        for key, value in params.items()
    }
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "export", "params": {"format": "trl_preference", **values}},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Job.objects.filter(kind=JobKind.EXPORT).exists()


def test_a_curator_of_another_project_cannot_reach_this_one(project, api, explained):
    stranger = UserFactory(username="dora")
    from tests.factories import ProjectFactory

    MembershipFactory(user=stranger, project=ProjectFactory(), role=Role.CURATOR)
    url = f"/api/v1/projects/{project.id}/explanations/{explained.id}/"
    assert api(stranger).get(url).status_code == 404


def test_the_detail_and_a_feature_take_a_fixed_number_of_queries(
    project, alice, api, explained, django_assert_max_num_queries
):
    client = api(alice)
    base_url = f"/api/v1/projects/{project.id}/explanations/{explained.id}/"
    # Token, project and role, explanation, features; a feature's examples add its pairs,
    # their responses and items: the same count whatever the number of features or examples.
    with django_assert_max_num_queries(5):
        assert client.get(base_url).status_code == 200
    with django_assert_max_num_queries(7):
        assert client.get(f"{base_url}features/0/").status_code == 200

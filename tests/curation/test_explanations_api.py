"""The explanations API and the two actions on a feature: permissions, shapes, bad input, idempotency.

The explanation here is stored through the job's own storage service from a report
written out by hand (the shape ``Explanation.to_dict()`` has), so these tests pin the
application side; ``test_explain_job.py`` runs the real core end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotation.models import Role
from curation.explanations.inputs import explain_inputs
from curation.explanations.services import explanation_store
from curation.models import (
    DatasetVersion,
    ExplanationActivation,
    Job,
    JobKind,
    JobStatus,
    ReviewEntry,
)
from curation.pairs import Selection
from curation.services import job_create
from curation.storage import absolute
from tests.api_mixins import ScopedEndpointTests
from tests.explanation_world import PHRASE, import_planted
from tests.factories import MembershipFactory, UserFactory

N_ITEMS = 24


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


def store_explanation(project) -> Job:
    """An explain job with three features: 0 fires on the planted pairs, 1 weakly on all."""
    import_planted(project, N_ITEMS)
    job = Job.objects.create(project=project, kind=JobKind.EXPLAIN, status=JobStatus.SUCCEEDED)
    inputs = explain_inputs(project=project, selection=Selection(aggregation="all"))
    pair_ids = list(dict.fromkeys(p.pair_id for p in inputs.pairs))
    first = {}
    for p in inputs.pairs:
        first.setdefault(p.pair_id, p)
    activations = np.zeros((len(pair_ids), 3), dtype=np.float32)
    examples = []
    for row, pair_id in enumerate(pair_ids):
        pair = first[pair_id]
        if PHRASE in pair.text_a or PHRASE in pair.text_b:
            sign = 1.0 if PHRASE in pair.text_a else -1.0
            activations[row, 0] = sign * (2.0 + row / 100)
            examples.append(
                {"pair_id": pair_id, "activation": float(activations[row, 0]), "swapped": sign < 0}
            )
        activations[row, 1] = 0.1
    features = [
        {
            "index": 0,
            "coef": 0.9,
            "ci_low": 0.5,
            "ci_high": 1.3,
            "p_value": 1e-5,
            "p_bonferroni": 3e-5,
            "prevalence": 0.33,
            "examples": examples,
            "ngrams_high": [{"ngram": "sincerely hope", "z": 4.0}],
            "ngrams_low": [{"ngram": "sorry", "z": 2.0}],
            "stats": {"high": {"words": 60.0}, "low": {"words": 50.0}},
            "group_effects": [
                {
                    "field": "country",
                    "value": "US",
                    "coef": 1.2,
                    "ci_low": 0.8,
                    "ci_high": 1.6,
                    "n_annotators": 3,
                    "n_judgements": N_ITEMS,
                    "interaction_p": 0.001,
                },
            ],
            "name": None,
            "proposed_name": None,
            "fidelity_r": None,
            "fidelity_p": None,
        },
        {
            "index": 1,
            "coef": -0.2,
            "ci_low": -0.6,
            "ci_high": 0.2,
            "p_value": 0.3,
            "p_bonferroni": 0.9,
            "prevalence": 1.0,
            "name": "hedging",
            "fidelity_r": 0.6,
            "fidelity_p": 0.01,
        },
        {
            "index": 2,
            "coef": float("nan"),
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "p_bonferroni": None,
            "prevalence": 0.0,
        },
    ]
    explanation_store(
        job=job,
        pairs=inputs.pairs,
        pair_ids=pair_ids,
        activations=activations,
        report={
            "features": features,
            "probes": {
                "auc_full": 0.7,
                "auc_length_only": 0.55,
                "auc_sparse": {"5": 0.64, "10": 0.66},
                "share_explained": {"5": 0.7, "10": 0.8},
            },
            "groups": [],
            "history": [{"epoch": 1, "train_nmse": 0.9, "held_out_nmse": 0.95}],
            "counts": {"pairs": len(pair_ids), "judgements": len(inputs.pairs)},
        },
        config={"alpha": 0.05},
        weights_path=f"projects/{project.id}/jobs/{job.id}/sae",
    )
    return job


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

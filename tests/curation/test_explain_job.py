"""The explain job end to end, in process, on real HH-RLHF pairs with a planted phrase.

The tiny encoder keeps it fast; the maths is the real core's. What is checked is the
application side: the job runs from the API, stores its rows and the SAE, runs
again to the same rows, and its groups come from the annotators' profiles.
"""

from __future__ import annotations

import pytest

from curation.jobs.kinds import explain
from curation.models import (
    Artifact,
    Explanation,
    ExplanationActivation,
    ExplanationFeature,
    ExplanationPair,
    Job,
    JobStatus,
)
from curation.storage import absolute, file_sha256
from tests.explanation_world import PHRASE, import_planted
from tests.threads import one_thread

PAIRS = 90
FAST = {"n_features": 8, "k_active": 2, "max_epochs": 6, "min_group_judgements": 10}


@pytest.fixture
def planted(project, tiny_embeddings):
    import_planted(project, PAIRS, disagree=True)
    return project


def launch(api, user, project, params: dict) -> Job:
    with one_thread():
        response = api(user).post(
            f"/api/v1/projects/{project.id}/jobs/",
            {"kind": "explain", "params": {**FAST, **params}},
            format="json",
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def snapshot(job: Job) -> dict:
    features = ExplanationFeature.objects.filter(explanation__job=job).order_by("index")
    return {
        "features": [(f.index, f.rank, round(f.coef or 0, 6), f.prevalence) for f in features],
        "activations": sorted(
            (a.pair.pair_id, a.feature, round(a.activation, 5))
            for a in ExplanationActivation.objects.filter(explanation__job=job).select_related(
                "pair"
            )
        ),
    }


def test_the_job_stores_features_pairs_activations_and_the_sae(planted, alice, api):
    job = launch(api, alice, planted, {})

    explanation = Explanation.objects.get(job=job)
    assert job.result["pairs"] == PAIRS and job.result["judgements"] == 2 * PAIRS
    assert job.result["annotators"] == 6
    assert ExplanationPair.objects.filter(explanation=explanation).count() == PAIRS
    assert ExplanationFeature.objects.filter(explanation=explanation).count() == 8
    ranks = list(explanation.features.order_by("rank").values_list("coef", flat=True))
    assert [abs(c or 0) for c in ranks][:1] >= [abs(c or 0) for c in ranks][1:2]
    activations = ExplanationActivation.objects.filter(explanation=explanation)
    assert activations.exists() and not activations.filter(activation=0).exists()
    # Labels follow the orientation: A is the response in the first position.
    pair = ExplanationPair.objects.filter(explanation=explanation).first()
    assert pair.response_a.position < pair.response_b.position
    # The SAE is saved beside the job, recorded with its hash.
    weights = Artifact.objects.get(job=job, kind="sae-weights")
    assert file_sha256(absolute(weights.path)) == weights.sha256
    assert absolute(f"{explanation.weights_path}/sae.json").exists()
    # Training reduced the held-out reconstruction error.
    held = [row["held_out_nmse"] for row in explanation.history]
    assert len(held) >= 2 and min(held) < held[0]
    assert set(explanation.probes) >= {"auc_full", "auc_sparse", "share_explained"}


def test_annotator_groups_come_from_the_profiles(planted, alice, api):
    job = launch(api, alice, planted, {})

    effects = [
        effect
        for feature in ExplanationFeature.objects.filter(explanation__job=job)
        for effect in feature.group_effects
    ]
    countries = {e["value"] for e in effects if e["field"] == "country"}
    assert countries == {"US", "GB"}
    assert all(e["n_annotators"] == 3 for e in effects if e["field"] == "country")


def test_running_the_job_twice_gives_the_same_rows_never_duplicates(planted, alice, api):
    job = launch(api, alice, planted, {})
    before = snapshot(job)

    with one_thread():
        explain.run(job, lambda fraction, message: None)

    assert snapshot(job) == before
    assert Explanation.objects.filter(job=job).count() == 1


def test_one_seed_gives_the_same_features_in_two_jobs(planted, alice, api):
    first = snapshot(launch(api, alice, planted, {"seed": 3}))
    second = snapshot(launch(api, alice, planted, {"seed": 3}))

    assert first["features"] == second["features"]


def _phrase_feature(job: Job) -> tuple[ExplanationFeature, float]:
    """The feature whose high-side examples most often carry the phrase, and that share."""
    from curation.explanations.selectors import feature_examples

    best, share = None, -1.0
    for feature in ExplanationFeature.objects.filter(explanation__job=job):
        examples = feature_examples(feature=feature)
        carried = sum(PHRASE in e["left"]["text"] for e in examples) / max(len(examples), 1)
        if carried > share:
            best, share = feature, carried
    return best, share


@pytest.mark.slow
def test_a_planted_phrase_everyone_rewards_surfaces_as_a_significant_feature(
    project, alice, api, tiny_embeddings
):
    import_planted(project, PAIRS)
    # The real encoder: the tiny one reads characters and barely sees a phrase.
    job = launch(api, alice, project, {"embedding_model": "all-MiniLM-L6-v2"})

    feature, share = _phrase_feature(job)
    assert share >= 0.6  # every third pair carries it: a third by chance
    assert feature.p_bonferroni < 0.05
    # The side with more of the feature (the phrase) is the side that wins.
    assert feature.coef > 0 and feature.ci_low > 0


@pytest.mark.slow
def test_groups_that_disagree_about_the_phrase_get_opposite_effects(planted, alice, api):
    job = launch(api, alice, planted, {"embedding_model": "all-MiniLM-L6-v2"})

    feature, share = _phrase_feature(job)
    assert share >= 0.6  # every third pair carries it: a third by chance
    by_country = {e["value"]: e for e in feature.group_effects if e["field"] == "country"}
    assert by_country["US"]["coef"] > 0 > by_country["GB"]["coef"]
    assert by_country["US"]["interaction_p"] < 0.05


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"k_active": 9}, "params.k_active"),
        ({"n_features": 1}, "params.n_features"),
        ({"include_prompt": "yes"}, "params.include_prompt"),
        ({"held_out_fraction": 0.99}, "params.held_out_fraction"),
        ({"judge": 999999}, "params.judge"),
        ({"aggregation": "loudest"}, "params.aggregation"),
        ({"sparse": True}, "params"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_key(project, alice, api, params, field):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "explain", "params": {**FAST, **params}},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["field"].startswith(field)
    assert not Job.objects.exists()


def test_too_few_pairs_fail_the_job_with_the_reason(project, alice, api, tiny_embeddings):
    import_planted(project, 8)
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "explain", "params": FAST},
        format="json",
    )
    job = Job.objects.get(pk=response.json()["id"])

    assert job.status == JobStatus.FAILED
    assert "too few to explain" in job.error
    assert not Explanation.objects.exists()

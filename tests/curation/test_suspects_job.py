"""The suspect-labels job: its own parameters, each changing the outcome, and what it reports."""

from __future__ import annotations

import json
from typing import Any

import pytest

import models_gpu
from annotation.services import items_import
from curation.jobs.kinds.suspects import SuspectParams
from curation.models import Job, JobStatus, PairScore
from tests.datasets import dataset
from tests.threads import one_thread

BASE = {"folds": 3, "epochs": 4}


@pytest.fixture
def hh_project(project):
    lines = (
        (dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl").read_text().splitlines()[:151]
    )
    items_import(project=project, lines=lines, fmt="hh", skip_invalid=True)
    return project


def run_job(api, user, project, params: dict[str, Any]) -> Job:
    with one_thread():
        response = api(user).post(
            f"/api/v1/projects/{project.id}/jobs/",
            {"kind": "suspects", "params": {**BASE, **params}},
            format="json",
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def outcome(job: Job) -> dict[str, Any]:
    rows = PairScore.objects.filter(job=job).order_by("pair_key")
    return {
        "flagged": [r.pair_key for r in rows.filter(suspect=True).order_by("-suspect_confidence")],
        "confidence": [round(r.suspect_confidence, 9) for r in rows],
        "margin": [round(r.margin, 6) for r in rows],
        "result": {
            key: job.result[key]
            for key in ("estimated_noise_rate", "expected_precision", "temperature", "refitted")
        },
    }


def test_the_defaults_come_from_the_numerical_core() -> None:
    params = SuspectParams()
    assert params.suspect_config() == models_gpu.SuspectConfig()
    assert params.reward_config().duplicate_cosine == models_gpu.RewardConfig().duplicate_cosine
    names = {name for name, _ in SuspectParams.specs()}
    # FiFA's selection knobs do not apply to suspect labels.
    assert not names & {"alpha", "gamma", "k", "keep_fraction", "keep_top", "greedy"}


def test_a_default_job_reports_its_noise_estimate_and_flags_by_confidence(
    hh_project, alice, api, tiny_embeddings
) -> None:
    job = run_job(api, alice, hh_project, {})
    result = job.result
    assert result["pairs"] == 150
    assert 0.0 < result["estimated_noise_rate"] < 1.0
    assert result["estimated_noise_count"] == round(result["estimated_noise_rate"] * 150)
    flagged = list(PairScore.objects.filter(job=job, suspect=True).order_by("-suspect_confidence"))
    assert len(flagged) == result["suspects"] > 0
    assert result["expected_precision"] == pytest.approx(
        sum(r.suspect_confidence for r in flagged) / len(flagged), abs=1e-6
    )
    unflagged = PairScore.objects.filter(job=job, suspect=False)
    assert max(r.suspect_confidence for r in unflagged) <= flagged[-1].suspect_confidence
    assert sum(map(sum, result["confident_joint"])) <= 150


# (parameter, value, what must differ from a default run)
VARIANTS = [
    ("suspect_threshold", 0.99, "flagged"),
    ("flag_share", 1.0, "flagged"),
    ("max_flagged", 1, "flagged"),
    ("calibrate", False, "confidence"),
    ("refit", False, "confidence"),
    ("folds", 4, "margin"),
    ("epochs", 6, "margin"),
    ("hidden", 32, "margin"),
    ("seed", 1, "margin"),
]


@pytest.fixture(scope="module")
def shared_storage(tmp_path_factory: pytest.TempPathFactory):
    """One storage root for the parameter tests: the default run's embeddings and held-out
    margins are computed once and read from the caches after (the results are the same
    either way; only the time differs)."""
    return tmp_path_factory.mktemp("suspects-storage")


@pytest.mark.parametrize(("name", "value", "changed"), VARIANTS)
def test_each_parameter_changes_the_outcome(
    hh_project, alice, api, tiny_embeddings, settings, shared_storage, name, value, changed
) -> None:
    settings.BALLOT_STORAGE_ROOT = shared_storage
    default = outcome(run_job(api, alice, hh_project, {}))
    varied_job = run_job(api, alice, hh_project, {name: value})
    assert varied_job.params[name] == value
    varied = outcome(varied_job)
    assert varied[changed] != default[changed]
    if name == "suspect_threshold":
        assert len(varied["flagged"]) < len(default["flagged"])
    if name == "flag_share":
        assert len(varied["flagged"]) > len(default["flagged"])
    if name == "max_flagged":
        assert varied["flagged"] == default["flagged"][:1]
    if name == "calibrate":
        assert varied["result"]["temperature"] == 1.0 != default["result"]["temperature"]
    if name == "refit":
        assert varied["result"]["refitted"] is False and default["result"]["refitted"] is True


def test_reward_model_path_supplies_the_margins_and_skips_the_refit(
    hh_project, alice, api, tiny_embeddings, settings, tmp_path
) -> None:
    from tests.tiny_models import build_tiny_sequence_classifier

    settings.BALLOT_MODEL_ROOTS = [*settings.BALLOT_MODEL_ROOTS, str(tmp_path)]
    (tmp_path / "tiny-rm").mkdir()
    build_tiny_sequence_classifier(tmp_path / "tiny-rm", ["the", "a", "you", "i", "to", "not"])
    default = outcome(run_job(api, alice, hh_project, {}))
    external = run_job(api, alice, hh_project, {"reward_model_path": "tiny-rm"})
    assert external.result["fold_accuracy"] == [] and external.result["refitted"] is False
    assert outcome(external)["margin"] != default["margin"]
    assert outcome(external)["confidence"] != default["confidence"]


TOPICS = [
    "How do I bake sourdough bread at home?",
    "What causes the northern lights?",
    "Explain how a car's differential works.",
    "Which chess openings suit beginners?",
    "How should I water succulents in winter?",
    "What is the tax treatment of stock options in France?",
    "Why is the sky blue?",
    "How can I learn to touch type?",
    "What should I pack for a week of hiking?",
    "How do vaccines train the immune system?",
]


@pytest.mark.slow
def test_duplicate_cosine_keeps_near_copies_of_a_prompt_in_one_fold(
    project, alice, api, settings, tmp_path
) -> None:
    # MiniLM, not the tiny encoder: telling a rephrased prompt from another prompt is
    # exactly what a random 16-dimensional encoder cannot do.
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    # Each prompt asked twice in different words: exact-text groups split the twins.
    lines = [
        json.dumps(
            {
                "chosen": f"\n\nHuman: {topic}{end}\n\nAssistant: Here is a careful answer.",
                "rejected": f"\n\nHuman: {topic}{end}\n\nAssistant: No idea, sorry.",
            }
        )
        for topic in TOPICS
        for end in ("", " Thanks!")
    ]
    items_import(project=project, lines=lines, fmt="hh", skip_invalid=False)

    def twins_split(cosine: float) -> int:
        job = run_job(api, alice, project, {"duplicate_cosine": cosine, "folds": 2})
        fold_of: dict[str, set[int]] = {}
        for score in PairScore.objects.filter(job=job).select_related("item"):
            topic = score.item.conversation[0]["content"].removesuffix(" Thanks!")
            fold_of.setdefault(topic, set()).add(score.fold)
        assert len(fold_of) == len(TOPICS)
        return sum(len(folds) > 1 for folds in fold_of.values())

    assert twins_split(1.0) > 0
    assert twins_split(0.9) == 0

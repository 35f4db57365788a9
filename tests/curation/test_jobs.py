"""Curation jobs end to end: launch, progress, per-pair scores, idempotency, claims, cancel."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.services import items_import
from curation.jobs.kinds.fifa import run as run_scoring
from curation.models import Job, JobStatus, PairScore
from curation.services import JobCancelled, job_cancel, job_claim, job_progress
from tests.datasets import dataset

FAST = {"folds": 3, "epochs": 6, "keep_fraction": 0.3}


@pytest.fixture
def hh_project(project):
    lines = (
        (dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl").read_text().splitlines()[:151]
    )
    # 151 lines, 150 pairs: line 87 has an empty chosen reply and is left out.
    items_import(project=project, lines=lines, fmt="hh", skip_invalid=True)
    return project


@pytest.fixture
def own_storage(settings, tmp_path):
    """Caches start empty: no test passes because another one filled them."""
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.mark.slow
def test_a_fifa_job_from_the_api_stores_sensible_scores_per_pair(
    hh_project, alice, api, own_storage
):
    # The one job test on the default embedding model (MiniLM): the others use a tiny encoder.
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{hh_project.id}/jobs/", {"kind": "fifa", "params": FAST}, format="json"
    )
    assert response.status_code == 202, response.content
    job = client.get(f"/api/v1/projects/{hh_project.id}/jobs/{response.json()['id']}/").json()
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == 1.0
    result = job["result"]
    assert result["pairs"] == 150 and result["kept"] == 45
    # Keeping pairs by importance must raise the mean margin over the full set and a random subset.
    assert result["mean_margin"]["kept"] > result["mean_margin"]["full"]
    assert result["mean_margin"]["kept"] > result["mean_margin"]["random"]
    assert 0.0 <= result["heldout_accuracy"] <= 1.0
    assert any(
        a["kind"] == "prompt-embeddings" and a["path"].endswith(".npy") for a in job["artifacts"]
    )
    scores = client.get(
        f"/api/v1/projects/{hh_project.id}/jobs/{job['id']}/scores/?kept=true"
    ).json()["results"]
    assert len(scores) == 45
    importances = [s["importance"] for s in scores]
    assert importances == sorted(importances, reverse=True)
    suspects = client.get(
        f"/api/v1/projects/{hh_project.id}/jobs/{job['id']}/scores/?suspect=true&order=suspect_confidence"
    ).json()["results"]
    assert all(s["prob_chosen"] < 0.5 for s in suspects)


SCORE_FIELDS = ("margin", "quality", "diversity", "importance", "kept", "kept_rank", "suspect")


def _scores(job: Job) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in PairScore.objects.filter(job=job).values_list("pair_key", *SCORE_FIELDS)
    }


def test_running_a_job_twice_leaves_the_same_rows(hh_project, alice, api, tiny_embeddings):
    response = api(alice).post(
        f"/api/v1/projects/{hh_project.id}/jobs/",
        {"kind": "suspects", "params": {"folds": 3, "epochs": 6}},
        format="json",
    )
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    first = _scores(job)
    assert len(first) == 150
    assert len({values[0] for values in first.values()}) > 100  # margins differ per pair

    run_scoring(job, lambda fraction, message: None)

    second = _scores(job)
    assert PairScore.objects.filter(job=job).count() == 150
    assert second.keys() == first.keys()
    for key, values in first.items():
        assert second[key] == pytest.approx(values, abs=1e-9), key


def test_a_job_claimed_twice_runs_once(project):
    job = Job.objects.create(project=project, kind="fifa", params={})
    assert job_claim(job_id=job.id) is True
    assert job_claim(job_id=job.id) is False
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1


def test_a_stale_running_job_can_be_claimed_again(project, settings):
    from datetime import timedelta

    from django.utils import timezone

    job = Job.objects.create(project=project, kind="fifa", params={})
    assert job_claim(job_id=job.id)
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.BALLOT_JOB_STALE_SECONDS + 1)
    )
    assert job_claim(job_id=job.id) is True
    job.refresh_from_db()
    assert job.attempts == 2


def test_cancelling_stops_a_running_job_at_its_next_progress_report(project, alice, api):
    job = Job.objects.create(project=project, kind="fifa", params={})
    job_claim(job_id=job.id)
    response = api(alice).post(f"/api/v1/projects/{project.id}/jobs/{job.id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    with pytest.raises(JobCancelled):
        job_progress(job_id=job.id, fraction=0.5, message="still going")
    from annotation.errors import Conflict

    with pytest.raises(Conflict):
        job.status = JobStatus.SUCCEEDED
        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
        job_cancel(job=job)


def test_bad_job_parameters_are_400_with_the_field(project, alice, api):
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "fifa", "params": {"keep_fraction": 2}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "params.keep_fraction"
    response = client.post(
        f"/api/v1/projects/{project.id}/jobs/", {"kind": "teleport"}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "kind"
    response = client.post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "fifa", "params": {"frobnicate": 1}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "params.frobnicate"
    assert not Job.objects.exists()


def test_a_job_without_enough_pairs_fails_with_a_reason(project, alice, api):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/", {"kind": "fifa"}, format="json"
    )
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.FAILED and "too few" in job.error


def test_the_curate_command_runs_a_job_and_reports_errors(hh_project, capsys, tiny_embeddings):
    call_command("curate", "suspects", "--project", str(hh_project.id), "folds=3", "epochs=4")
    out = capsys.readouterr().out
    assert "succeeded" in out and '"suspects"' in out
    with pytest.raises(CommandError, match="keep_fraction"):
        call_command("curate", "fifa", "--project", str(hh_project.id), "keep_fraction=7")
    with pytest.raises(CommandError, match="No project"):
        call_command("curate", "fifa", "--project", "99999")


def test_a_local_hugging_face_reward_model_can_supply_the_margins(
    hh_project, alice, api, tmp_path, settings, tiny_embeddings
):
    import numpy as np

    from curation.conversation import conversation_text
    from models_gpu import HFRewardModel
    from tests.tiny_models import build_tiny_sequence_classifier

    # Models load only from the roots an admin configured, named relative to one.
    settings.BALLOT_MODEL_ROOTS = [str(tmp_path)]
    (tmp_path / "tiny-rm").mkdir()
    build_tiny_sequence_classifier(tmp_path / "tiny-rm", ["the", "a", "you", "i", "to", "not"])
    params = {**FAST, "reward_model_path": "tiny-rm"}
    response = api(alice).post(
        f"/api/v1/projects/{hh_project.id}/jobs/", {"kind": "fifa", "params": params}, format="json"
    )
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["fold_accuracy"] == []  # no Bradley–Terry folds were trained
    scores = list(
        PairScore.objects.filter(job=job)
        .order_by("id")
        .select_related("chosen_response", "rejected_response", "item")
    )
    model = HFRewardModel(tmp_path / "tiny-rm").fit()
    sample = scores[:5]
    prompts = [conversation_text(s.item.conversation) for s in sample]
    expected = model.decision_function(
        prompts,
        [s.chosen_response.text for s in sample],
        [s.rejected_response.text for s in sample],
    )
    assert np.allclose([s.margin for s in sample], expected, atol=1e-4)
    bad = api(alice).post(
        f"/api/v1/projects/{hh_project.id}/jobs/",
        {"kind": "fifa", "params": {"reward_model_path": "/nope"}},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "params.reward_model_path"


TOPICS = [
    "How do I bake sourdough bread at home?",
    "What causes the northern lights?",
    "Explain how a car's differential works.",
    "Which chess openings suit beginners?",
    "How should I water succulents in winter?",
    "What is the tax treatment of stock options in France?",
]


@pytest.fixture
def six_prompt_project(project):
    # The demo project's shape: many pairs over few distinct prompts.
    lines = [
        json.dumps(
            {
                "chosen": f"\n\nHuman: {TOPICS[i % 6]}\n\nAssistant: A careful answer, number {i}.",
                "rejected": f"\n\nHuman: {TOPICS[i % 6]}\n\nAssistant: No idea {i}, sorry.",
            }
        )
        for i in range(60)
    ]
    items_import(project=project, lines=lines, fmt="hh")
    return project


@pytest.mark.parametrize(("when_short", "kept"), [(None, 30), ("fill", 30), ("stop", 6)])
def test_a_fifa_job_that_runs_out_of_distinct_prompts_says_why_and_fills_or_stops(
    six_prompt_project, alice, api, when_short, kept, tiny_embeddings
):
    params = {"folds": 3, "epochs": 2, "keep_fraction": 0.5}
    if when_short:
        params["when_short"] = when_short
    response = api(alice).post(
        f"/api/v1/projects/{six_prompt_project.id}/jobs/",
        {"kind": "fifa", "params": params},
        format="json",
    )
    job = api(alice).get(f"/api/v1/projects/{six_prompt_project.id}/jobs/{response.json()['id']}/")
    result = job.json()["result"]

    assert job.json()["status"] == "succeeded", job.json()["error"]
    assert result["pairs"] == 60 and result["requested"] == 30
    assert result["kept"] == kept and result["kept_diverse"] == 6
    assert result["filled"] == kept - 6
    assert result["when_short"] == (when_short or "fill")
    assert "kept 6 of the 30" in result["short_reason"]
    assert PairScore.objects.filter(job_id=job.json()["id"], kept=True).count() == kept

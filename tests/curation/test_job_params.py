"""Job and export parameters: strict types and ranges, model folders only from configured roots."""

from __future__ import annotations

import pytest

from curation.models import DatasetVersion, Job, JobStatus


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    settings.BALLOT_MODEL_ROOTS = []


def post_job(client, project, kind: str, params):
    return client.post(
        f"/api/v1/projects/{project.id}/jobs/", {"kind": kind, "params": params}, format="json"
    )


BAD_PARAMS = [
    ("fifa", {"tags": 5}, "params.tags"),
    ("fifa", {"tags": [1, 2]}, "params.tags"),
    ("fifa", {"questions": "x", "include_ties": "no"}, "params.include_ties"),
    ("fifa", {"greedy": "yes"}, "params.greedy"),
    ("fifa", {"k": 2.5}, "params.k"),
    ("fifa", {"keep_top": True}, "params.keep_top"),
    ("fifa", {"keep_fraction": "0.3"}, "params.keep_fraction"),
    ("fifa", {"when_short": "pad"}, "params.when_short"),
    ("fifa", {"seed": -1}, "params.seed"),
    ("fifa", {"seed": 2**64}, "params.seed"),
    ("fifa", {"min_agreement": [0.5]}, "params.min_agreement"),
    ("fifa", {"annotator_filter": {"country_of_residence": {"a": 1}}}, None),
    ("suspects", {"created_after": "2024-02-30"}, "params.created_after"),
    ("suspects", {"created_before": 20240101}, "params.created_before"),
    (
        "suspects",
        {"created_after": "2024-03-01", "created_before": "2024-02-01"},
        "params.created_after",
    ),
    ("reward", {"when_short": "fill"}, "params.when_short"),
    ("reward", {"epochs": 0}, "params.epochs"),
    ("embed", {"keep_fraction": 0.3}, "params.keep_fraction"),
    ("embed", {"tags": ["a"]}, "params.tags"),
    ("embed", {"shards": 0}, "params.shards"),
    ("embed", {"batch_size": "64"}, "params.batch_size"),
    ("export", {"outputs": 5}, "params.outputs"),
    ("export", {"outputs": ["jsonl", "csv"]}, "params.outputs"),
    ("export", {"outputs": []}, "params.outputs"),
    ("export", {"created_after": "2024-02-30"}, "params.created_after"),
    ("export", {"fifa_job": "abc"}, "params.fifa_job"),
    ("export", {"fifa_job": 1.5}, "params.fifa_job"),
    ("export", {"seed": 1.5}, "params.seed"),
    ("export", {"format": ["trl_preference"]}, "params.format"),
    ("export", {"name": 5}, "params.name"),
    ("export", {"name": "x" * 201}, "params.name"),
    ("export", {"test_fraction": 1}, "params.test_fraction"),
    ("export", {"conversational": "true"}, "params.conversational"),
    ("export", {"profile_fields": 3, "include_annotators": True}, "params.profile_fields"),
    ("export", {"tags": {"a": 1}}, "params.tags"),
]


@pytest.mark.parametrize(("kind", "params", "field"), BAD_PARAMS)
def test_a_job_parameter_of_the_wrong_type_or_range_is_400_naming_it_and_writes_nothing(
    project, alice, api, kind, params, field
):
    response = post_job(api(alice), project, kind, params)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid" and body["detail"]
    assert body["field"] == (
        field or f"params.annotator_filter.{next(iter(params['annotator_filter']))}"
    )
    assert not Job.objects.exists()


@pytest.mark.parametrize(("kind", "params", "field"), [c for c in BAD_PARAMS if c[0] == "export"])
def test_the_same_export_parameters_are_refused_by_dataset_publish(
    project, alice, api, kind, params, field
):
    response = api(alice).post(f"/api/v1/projects/{project.id}/datasets/", params, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "raw",
    ['{"seed": 1e400}', '{"seed": 1' + "0" * 400 + "}", '{"test_fraction": -1e400}'],
)
def test_numbers_too_large_for_a_float_are_400_not_500(project, alice, api, raw):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/datasets/", raw, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "seed" in (response.json()["field"] or "") or "test_fraction" in (
        response.json()["field"] or ""
    )
    assert not Job.objects.exists()


@pytest.mark.parametrize("kind", ["fifa", "suspects", "reward", "embed", "export"])
def test_an_unknown_parameter_is_refused_by_every_job_kind(project, alice, api, kind):
    response = post_job(api(alice), project, kind, {"frobnicate": 1})
    assert response.status_code == 400
    assert response.json()["field"] == "params.frobnicate"
    assert "frobnicate" in response.json()["detail"]


@pytest.mark.parametrize("body", ["[]", '"x"', "12", "null", "[{}]"])
def test_a_dataset_publish_body_that_is_not_an_object_is_400_and_starts_no_export(
    project, alice, api, body
):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/datasets/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "body"
    assert not Job.objects.exists()


def test_an_empty_object_still_publishes_a_default_export(project, alice, api):
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/datasets/", "{}", content_type="application/json"
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert DatasetVersion.objects.get(job=job).version == 1


# --- model folders ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["/etc", "/definitely/not/here", "../../etc", "models/../../etc", "/tmp"]
)
@pytest.mark.parametrize("key", ["embedding_model", "reward_model_path"])
def test_a_model_path_outside_the_configured_roots_is_400_with_one_message_whether_it_exists_or_not(
    project, alice, api, settings, tmp_path, name, key
):
    (tmp_path / "models" / "minilm").mkdir(parents=True)
    settings.BALLOT_MODEL_ROOTS = [str(tmp_path / "models")]
    kind = "embed" if key == "embedding_model" else "fifa"

    response = post_job(api(alice), project, kind, {key: name})
    missing = post_job(api(alice), project, kind, {key: "/no/such/folder/anywhere"})

    assert response.status_code == missing.status_code == 400
    assert response.json() == missing.json()
    assert response.json()["field"] == f"params.{key}"
    assert "BALLOT_MODEL_ROOTS" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_symlink_out_of_a_model_root_does_not_resolve(project, alice, api, settings, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    (root / "escape").symlink_to("/etc")
    settings.BALLOT_MODEL_ROOTS = [str(root)]

    response = post_job(api(alice), project, "embed", {"embedding_model": "escape"})

    assert response.status_code == 400 and response.json()["field"] == "params.embedding_model"


def test_without_configured_roots_only_the_bundled_embedding_model_is_accepted(
    project, alice, api, monkeypatch
):
    # Accepting the name is the point; running the job would only load MiniLM.
    monkeypatch.setattr("curation.services.jobs.job_enqueue", lambda **kwargs: None)

    response = post_job(api(alice), project, "embed", {"embedding_model": "all-MiniLM-L6-v2"})

    assert response.status_code == 202, response.content
    assert Job.objects.get().params["embedding_model"] == "all-MiniLM-L6-v2"
    refused = post_job(api(alice), project, "embed", {"embedding_model": "all-MiniLM-L12-v2"})
    assert refused.status_code == 400


def test_a_job_whose_shard_fails_is_failed_with_the_reason_in_the_api(
    project, items, alice, api, settings, tmp_path
):
    # A folder under the root that holds no model: accepted, then fails while embedding.
    (tmp_path / "models" / "broken").mkdir(parents=True)
    settings.BALLOT_MODEL_ROOTS = [str(tmp_path / "models")]

    response = post_job(api(alice), project, "embed", {"embedding_model": "broken"})

    assert response.status_code == 202, response.content
    job = api(alice).get(f"/api/v1/projects/{project.id}/jobs/{response.json()['id']}/").json()
    assert job["status"] == "failed"
    assert job["finished_at"] is not None
    assert "shard 0" in job["error"]
    assert job["params"] == {"batch_size": 64, "embedding_model": "broken", "shards": 1}

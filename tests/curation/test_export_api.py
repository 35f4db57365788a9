"""Dataset, quality and job endpoints: the permission matrix, bad export parameters, downloads."""

from __future__ import annotations

import hashlib

import pytest

from curation.models import DatasetVersion, Job, JobKind, JobStatus
from curation.services import job_create
from tests.api_mixins import ScopedEndpointTests, World
from tests.factories import ProjectFactory


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


def published(world: World) -> DatasetVersion:
    """An (empty) published dataset version of the world's project, made once per test."""
    if not hasattr(world, "version"):
        from curation.tasks import run_job

        # In a test transaction on_commit never fires: run the queued job as the worker would.
        job = job_create(
            project=world.project,
            kind=JobKind.EXPORT,
            params={"format": "trl_preference", "outputs": ["jsonl"]},
        )
        run_job.apply(args=[job.id])
        world.version = DatasetVersion.objects.get(job=job)
    return world.version


def queued_job(world: World) -> Job:
    if not hasattr(world, "job"):
        world.job = Job.objects.create(project=world.project, kind=JobKind.EXPORT, params={})
    return world.job


def base(world: World) -> str:
    return f"/api/v1/projects/{world.project.id}"


class TestDatasetList(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/datasets/"


class TestDatasetCreate(ScopedEndpointTests):
    method = "post"
    member_status = 202

    def url(self, world):
        return f"{base(world)}/datasets/"

    def payload(self, world):
        return {"format": "trl_preference", "outputs": ["jsonl"]}


class TestDatasetDetail(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/datasets/{published(world).id}/"


class TestDatasetManifestDownload(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/datasets/{published(world).id}/files/manifest.json"


class TestQuality(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/quality/"


class TestJobList(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/jobs/"


class TestJobCreate(ScopedEndpointTests):
    method = "post"
    member_status = 202

    def url(self, world):
        return f"{base(world)}/jobs/"

    def payload(self, world):
        return {"kind": "export", "params": {"format": "ranked_list"}}


class TestJobDetail(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/jobs/{queued_job(world).id}/"


class TestJobCancel(ScopedEndpointTests):
    method = "post"

    def url(self, world):
        return f"{base(world)}/jobs/{queued_job(world).id}/cancel/"


class TestJobScores(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}/jobs/{queued_job(world).id}/scores/"


ANNOTATOR_REFUSED = [
    ("get", lambda w: f"{base(w)}/datasets/", None),
    ("post", lambda w: f"{base(w)}/datasets/", {"format": "trl_preference"}),
    ("get", lambda w: f"{base(w)}/datasets/{published(w).id}/", None),
    ("get", lambda w: f"{base(w)}/datasets/{published(w).id}/files/manifest.json", None),
    ("get", lambda w: f"{base(w)}/quality/", None),
    ("get", lambda w: f"{base(w)}/jobs/", None),
    ("post", lambda w: f"{base(w)}/jobs/", {"kind": "export", "params": {}}),
    ("get", lambda w: f"{base(w)}/jobs/{queued_job(w).id}/", None),
    ("post", lambda w: f"{base(w)}/jobs/{queued_job(w).id}/cancel/", None),
    ("get", lambda w: f"{base(w)}/jobs/{queued_job(w).id}/scores/", None),
]


@pytest.mark.parametrize(("method", "url", "payload"), ANNOTATOR_REFUSED)
def test_bob_the_annotator_gets_403_on_every_curation_endpoint(world, method, url, payload):
    target = url(world)
    response = getattr(world.api(world.bob), method)(target, data=payload, format="json")
    assert response.status_code == 403, (target, response.content)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "sft"}, "params.format"),
        ({"format": "trl_preference", "min_agreement": 1.5}, "params.min_agreement"),
        ({"format": "trl_preference", "min_agreement": "lots"}, "params.min_agreement"),
        ({"format": "trl_preference", "colour": "red"}, "params.colour"),
    ],
)
def test_bad_export_parameters_answer_400_naming_the_field(world, params, field):
    response = world.api(world.alice).post(f"{base(world)}/datasets/", data=params, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Job.objects.filter(project=world.project).exists()


def test_a_fifa_job_of_another_project_is_refused(world):
    other = ProjectFactory(created_by=world.alice)
    fifa = Job.objects.create(project=other, kind=JobKind.FIFA, status=JobStatus.SUCCEEDED)
    response = world.api(world.alice).post(
        f"{base(world)}/datasets/",
        data={"format": "trl_preference", "fifa_job": fifa.id},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "params.fifa_job"


def test_an_unfinished_fifa_job_is_refused(world):
    fifa = Job.objects.create(project=world.project, kind=JobKind.FIFA, status=JobStatus.RUNNING)
    response = world.api(world.alice).post(
        f"{base(world)}/datasets/",
        data={"format": "trl_preference", "fifa_job": fifa.id},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "params.fifa_job"


def test_the_export_runs_and_the_new_version_is_listed(world, django_capture_on_commit_callbacks):
    client = world.api(world.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"{base(world)}/datasets/", data={"format": "trl_unpaired"}, format="json"
        )
    assert response.status_code == 202
    job = client.get(f"{base(world)}/jobs/{response.json()['id']}/").json()
    assert job["status"] == "succeeded", job
    listed = client.get(f"{base(world)}/datasets/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["version"] for row in rows] == [1]


def test_a_downloaded_file_matches_the_sha256_in_the_manifest(world):
    version = published(world)
    client = world.api(world.alice)
    manifest = client.get(f"{base(world)}/datasets/{version.id}/").json()["manifest"]
    entry = next(f for f in manifest["files"] if f["path"] == "jsonl/train.jsonl")
    response = client.get(f"{base(world)}/datasets/{version.id}/files/{entry['path']}")
    assert response.status_code == 200, response.content
    blob = b"".join(response.streaming_content)
    assert hashlib.sha256(blob).hexdigest() == entry["sha256"]


def test_the_downloaded_manifest_is_the_published_one(world):
    version = published(world)
    response = world.api(world.alice).get(
        f"{base(world)}/datasets/{version.id}/files/manifest.json"
    )
    assert response.status_code == 200
    import json

    assert json.loads(b"".join(response.streaming_content)) == version.manifest


def test_a_path_outside_the_version_is_not_served(world):
    version = published(world)
    response = world.api(world.alice).get(
        f"{base(world)}/datasets/{version.id}/files/../../../../etc/passwd"
    )
    assert response.status_code == 404


def test_an_export_with_no_rows_publishes_a_version_that_loads_from_disk(world):
    datasets = pytest.importorskip("datasets")
    from curation.storage import absolute

    response = world.api(world.alice).post(f"{base(world)}/datasets/", {}, format="json")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = DatasetVersion.objects.get(job=job)

    assert job.result["splits"] == version.manifest["splits"] == {"train": 0}
    loaded = datasets.load_from_disk(str(absolute(version.path) / "hf"))
    assert dict(loaded.num_rows) == {"train": 0}
    assert loaded["train"].column_names == [c["name"] for c in version.manifest["schema"]]

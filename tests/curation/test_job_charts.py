"""The job-charts API: importance bins and kept-against-dropped summaries checked against the PairScore rows."""

from __future__ import annotations

import random
import statistics

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Membership, Role
from curation.models import Job, JobKind, JobStatus, PairScore
from tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


def scored_job(project, *, pairs: int = 40, kind: str = JobKind.FIFA, seed: int = 5) -> Job:
    """A finished scoring job with random per-pair scores, one pair per item."""
    job = Job.objects.create(
        project=project, kind=kind, status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    rng = random.Random(seed)
    for index in range(pairs):
        item = ItemFactory(
            project=project,
            title=f"Question number {index} about gardens",
            responses=[f"A good answer {index}.", f"A poor answer {index}."],
        )
        chosen, rejected = item.responses.order_by("position")
        PairScore.objects.create(
            job=job,
            item=item,
            pair_key=str(item.id),
            kind="pairwise",
            question="preference",
            chosen_response=chosen,
            rejected_response=rejected,
            margin=rng.gauss(0.5, 1),
            prob_chosen=rng.random(),
            quality=rng.random(),
            diversity=rng.uniform(-2, 1),
            importance=rng.uniform(-1, 3),
            kept=rng.random() < 0.4,
            suspect=rng.random() < 0.3,
            suspect_confidence=rng.random(),
        )
    return job


def quartiles(values: list[float]) -> tuple[float, float, float]:
    # statistics' "inclusive" method is the linear interpolation numpy uses by default.
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def test_the_chart_data_matches_the_job_pair_scores(api, alice, project):
    job = scored_job(project)
    response = api(alice).get(f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/?bins=7")
    assert response.status_code == 200, response.content
    data = response.json()
    scores = list(PairScore.objects.filter(job=job))
    kept = [s for s in scores if s.kept]
    dropped = [s for s in scores if not s.kept]
    assert data["scored"] is True and data["pairs"] == 40 and data["kept"] == len(kept)

    importance = [s.importance for s in scores]
    low, high = min(importance), max(importance)
    edges = data["importance"]["edges"]
    assert len(edges) == 8
    assert edges[0] == pytest.approx(low) and edges[-1] == pytest.approx(high)
    width = (high - low) / 7

    def bin_of(value: float) -> int:
        return min(int((value - low) / width), 6)  # the highest value falls in the last bin

    expected_kept = [sum(1 for s in kept if bin_of(s.importance) == b) for b in range(7)]
    expected_dropped = [sum(1 for s in dropped if bin_of(s.importance) == b) for b in range(7)]
    assert data["importance"]["kept"] == expected_kept
    assert data["importance"]["dropped"] == expected_dropped

    groups = {g["metric"]: g for g in data["groups"]}
    assert set(groups) == {"margin", "quality", "diversity", "importance"}
    for metric in ("margin", "quality", "diversity"):
        for name, rows in (("kept", kept), ("dropped", dropped)):
            values = [getattr(s, metric) for s in rows]
            box = groups[metric][name]
            q1, median, q3 = quartiles(values)
            assert box["n"] == len(values)
            assert box["mean"] == pytest.approx(statistics.fmean(values))
            assert box["min"] == pytest.approx(min(values))
            assert box["max"] == pytest.approx(max(values))
            assert (box["q1"], box["median"], box["q3"]) == pytest.approx((q1, median, q3))


def test_a_job_run_again_gets_fresh_chart_data(api, alice, project):
    job = scored_job(project, pairs=10)
    url = f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/"
    before = api(alice).get(url).json()
    # A rerun replaces the scores and moves finished_at and attempts on.
    PairScore.objects.filter(job=job).update(kept=True)
    Job.objects.filter(pk=job.pk).update(attempts=2, finished_at=timezone.now())
    after = api(alice).get(url).json()
    assert before["kept"] < 10 and after["kept"] == 10
    assert sum(after["importance"]["kept"]) == 10 and sum(after["importance"]["dropped"]) == 0


def test_a_job_without_scores_has_no_chart_data(api, alice, project):
    job = Job.objects.create(project=project, kind=JobKind.EXPORT, status=JobStatus.SUCCEEDED)
    data = api(alice).get(f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/").json()
    assert data["scored"] is False and data["pairs"] == 0
    assert data["importance"] == {"edges": [], "kept": [], "dropped": []}
    assert all(g["kept"]["n"] == 0 and g["kept"]["median"] is None for g in data["groups"])


def test_a_bad_bin_count_is_a_400_naming_bins(api, alice, project):
    job = scored_job(project, pairs=3)
    for bins in ("0", "201", "many"):
        response = api(alice).get(
            f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/?bins={bins}"
        )
        assert response.status_code == 400
        assert response.json()["field"] == "bins"


def test_curators_read_the_charts_annotators_get_403_and_outsiders_404(api, project, bob, charlie):
    job = scored_job(project, pairs=3)
    curator = UserFactory(username="carol")
    Membership.objects.create(user=curator, project=project, role=Role.CURATOR)
    url = f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/"
    assert api(curator).get(url).status_code == 200
    assert api(bob).get(url).status_code == 403
    assert api(charlie).get(url).status_code == 404
    assert api(curator).get(f"/api/v1/projects/{project.id}/jobs/999999/charts/").status_code == 404


def test_the_chart_endpoint_is_in_the_openapi_schema():
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/projects/{project_id}/jobs/{job_id}/charts/"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"importance", "groups", "scored", "pairs", "kept"} <= set(component["properties"])

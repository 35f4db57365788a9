"""The jobs pages (/projects/{id}/jobs/ and /projects/{id}/jobs/{job_id}/) rendered by Django."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Role
from annotation.pseudonyms import pseudonym
from curation.jobs.registry import AVAILABLE, kinds_describe
from curation.models import Job, JobKind, JobStatus
from tests.curation.test_job_charts import scored_job
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana(project):
    """A curator of the project."""
    user = UserFactory(username="dana")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_launch_forms_carry_every_declared_parameter_with_its_default(alice, project):
    html = client_for(alice).get(f"/projects/{project.id}/jobs/").content.decode()
    for kind in kinds_describe():
        if not kind["available"]:
            assert f'data-kind="{kind["kind"]}"' not in html
            continue
        form = html.split(f'data-kind="{kind["kind"]}"', 1)[1].split("</form>", 1)[0]
        for param in kind["params"]:
            assert f'data-param="{param["name"]}"' in form, (kind["kind"], param["name"])
    fifa = html.split('data-kind="fifa"', 1)[1].split("</form>", 1)[0]
    # Types become input kinds, bounds become min/max, defaults are prefilled, help is shown.
    keep = re.search(r'<input type="number" id="fifa-keep_fraction"[^>]*>', fifa).group(0)
    default = AVAILABLE["fifa"].params.defaults()["keep_fraction"]
    assert f'value="{default}"' in keep and 'min="0.0"' in keep and 'max="1.0"' in keep
    assert re.search(r'<input type="checkbox" id="fifa-greedy"[^>]*checked', fifa)
    assert re.search(r'<select id="fifa-when_short"', fifa)
    assert "Share of pairs to keep when keep_top is null." in fifa


def job_table(response) -> str:
    return response.content.decode().split('id="job-table"', 1)[1].split("</table>", 1)[0]


def test_admins_see_who_launched_a_job_by_username_and_curators_by_pseudonym(alice, dana, project):
    Job.objects.create(project=project, kind=JobKind.EXPORT, created_by=dana)
    name = pseudonym(dana.id, str(project.id))
    as_admin = job_table(client_for(alice).get(f"/projects/{project.id}/jobs/"))
    as_curator = job_table(client_for(dana).get(f"/projects/{project.id}/jobs/"))
    assert f"{name} (dana)" in as_admin
    assert name in as_curator and "(dana)" not in as_curator


def test_annotators_get_403_and_outsiders_404_on_both_pages(bob, charlie, project):
    job = Job.objects.create(project=project, kind=JobKind.EXPORT)
    for url in (f"/projects/{project.id}/jobs/", f"/projects/{project.id}/jobs/{job.id}/"):
        assert client_for(bob).get(url).status_code == 403
        assert client_for(charlie).get(url).status_code == 404


def test_a_job_of_another_project_is_a_404(alice, project):
    other = Job.objects.create(project=ProjectFactory(), kind=JobKind.EXPORT)
    assert client_for(alice).get(f"/projects/{project.id}/jobs/{other.id}/").status_code == 404


def test_a_fifa_page_states_why_fewer_were_kept_and_the_kept_versus_random_summary(alice, project):
    job = scored_job(project, pairs=6)
    job.result = {
        "pairs": 6,
        "kept": 3,
        "requested": 4,
        "kept_diverse": 2,
        "filled": 1,
        "when_short": "fill",
        "short_reason": "Greedy selection kept 2 of the 4 <asked> pairs.",
        "mean_margin": {"kept": 1.25, "full": 0.5, "random": 0.4},
        "prompt_entropy": {"kept": 2.0, "full": 1.5, "random": 1.25},
        "heldout_accuracy": 0.75,
        "suspect_threshold": 0.8,
    }
    job.save()
    html = client_for(alice).get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    assert "Greedy selection kept 2 of the 4 &lt;asked&gt; pairs." in html
    assert "1.250" in html and "0.400" in html and "1.500" in html
    assert 'id="chart-importance"' in html and "vendor/plotly.min.js" in html


def test_a_suspects_page_ranks_flagged_pairs_by_confidence_and_links_items(alice, project):
    job = scored_job(project, pairs=12, kind=JobKind.SUSPECTS)
    html = client_for(alice).get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    table = html.split('id="suspect-table"', 1)[1].split("</table>", 1)[0]
    linked = [int(i) for i in re.findall(rf"/projects/{project.id}/items/(\d+)/", table)]
    expected = list(
        job.pair_scores.filter(suspect=True)
        .order_by("-suspect_confidence", "id")
        .values_list("item_id", flat=True)
    )
    assert linked == expected and expected


SUSPECT_RESULT = {
    "pairs": 12,
    "suspects": 3,
    "estimated_noise_rate": 0.3814,
    "estimated_noise_count": 5,
    "expected_precision": 0.6432,
    "refitted": True,
    "suspect_threshold": 0.5,
    "flag_share": 0.1,
    "max_flagged": None,
}


def test_a_suspects_page_shows_the_noise_estimate_beside_the_ranking(alice, project):
    job = scored_job(project, pairs=12, kind=JobKind.SUSPECTS)
    job.result = SUSPECT_RESULT
    job.save()
    html = client_for(alice).get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    estimate = html.split('id="suspect-estimate"', 1)[1].split('class="suspect-ranking"', 1)[0]
    assert '<dd id="noise-rate">38.1%</dd>' in estimate
    assert '<dd id="expected-precision">64.3%</dd>' in estimate
    assert "5 of 12 pairs" in estimate and '<dd id="flagged-count">3</dd>' in estimate
    # A result from before the estimate existed renders dashes, not an error.
    job.result = {"pairs": 12, "suspects": 3}
    job.save()
    html = client_for(alice).get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    assert '<dd id="noise-rate">–</dd>' in html and '<dd id="expected-precision">–</dd>' in html


def test_an_export_page_shows_rows_per_split_and_links_the_datasets_page(alice, project):
    job = Job.objects.create(
        project=project,
        kind=JobKind.EXPORT,
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        result={"dataset_version": 1, "version": 3, "rows": {"train": 90, "test": 10}},
    )
    html = client_for(alice).get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    assert "Rows in train" in html and ">90<" in html and ">10<" in html
    assert f'href="/projects/{project.id}/datasets/"' in html

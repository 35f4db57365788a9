"""The reliability job in headless Chromium: launched from its form, its results page, the quality column."""

from __future__ import annotations

import json

import pytest

from annotation.models import Membership, Role
from annotation.pseudonyms import pseudonym
from annotation.services import items_import
from curation.models import AnnotatorReliability, Job, JobStatus
from tests.browser.test_workspace_jobs import assert_no_horizontal_scroll, open_form
from tests.curation.test_reliability import simulated_rows
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def carol(project):
    """A curator of the project."""
    user = UserFactory(username="carol")
    Membership.objects.create(user=user, project=project, role=Role.CURATOR)
    return user


@pytest.fixture
def labelled(project):
    """Twelve annotators on 120 pairs: eight honest, two spammers, two adversaries."""
    rows, _, planted = simulated_rows(n_items=120)
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")
    return planted


@pytest.mark.slow
def test_a_curator_fits_reliability_and_reads_the_annotator_table_and_scatter(
    page, login, screenshot, project, carol, labelled
):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/jobs/")
    form = open_form(page, "reliability")
    form.locator("select[name=model]").select_option("mace")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/jobs/?launched=*", timeout=60_000)
    job = Job.objects.get(project=project, kind="reliability")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["model"] == "mace"

    page.locator(f"#job-{job.id} a").click()
    page.wait_for_url(f"**/jobs/{job.id}/")
    page.wait_for_selector("#chart-reliability .main-svg")
    rows = page.locator("#reliability-table tbody tr")
    assert rows.count() == 12
    text = page.locator("#reliability-table").inner_text()
    fitted = AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    for row in fitted:
        assert pseudonym(row.annotator_id, str(project.id)) in text
        assert row.annotator.username not in text  # curators see pseudonyms only
    # Most reliable first: the planted spammers and adversaries fill the last rows.
    lowest = sorted(fitted, key=lambda r: r.reliability)[: len(labelled)]
    tail = [rows.nth(i).inner_text() for i in range(12 - len(labelled), 12)]
    for row in lowest:
        assert any(pseudonym(row.annotator_id, str(project.id)) in line for line in tail)
    # One scatter series for the one fit: a point per annotator with a confirmable vote.
    plotted = page.evaluate(
        "() => document.getElementById('chart-reliability').data.map((t) => t.x.length)"
    )
    assert plotted == [sum(row.agreement is not None for row in fitted)]
    assert "preference" in page.locator("#fit-table").inner_text()
    assert page.errors == []
    assert_no_horizontal_scroll(page, "job-reliability", screenshot)


@pytest.mark.slow
def test_the_quality_table_shows_the_latest_reliability(
    page, login, screenshot, project, alice, labelled
):
    from curation.services import job_create

    job = job_create(project=project, kind="reliability", params={}, user=alice)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    login(page, "alice")
    page.goto(f"/projects/{project.id}/quality/")
    page.wait_for_selector("#quality[data-ready='1']")
    assert f"Reliability from job #{job.id}" in page.locator("#annotators-note").inner_text()
    table = page.locator("#annotator-table tbody")
    for row in AnnotatorReliability.objects.filter(job=job).select_related("annotator"):
        line = table.locator("tr", has_text=row.annotator.username).inner_text()
        assert f"{row.reliability:.2f}" in line
    assert page.errors == []
    assert_no_horizontal_scroll(page, "quality-reliability", screenshot)

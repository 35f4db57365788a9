"""The jobs pages in headless Chromium: launch from the registry's forms, live progress, cancel, retry, results."""

from __future__ import annotations

import contextlib
import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from annotation.models import Membership, Role
from annotation.services import items_import
from curation.jobs.registry import AVAILABLE
from curation.models import Job, JobKind, JobStatus, PairScore
from curation.services import job_finish, job_progress
from tests.curation.conftest import tiny_embeddings, tiny_model_root  # noqa: F401  (fixtures)
from tests.curation.test_job_charts import scored_job
from tests.curation.test_jobs import TOPICS
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (360, 768, 1400)


@pytest.fixture
def carol(project):
    """A curator of the project."""
    user = UserFactory(username="carol")
    Membership.objects.create(user=user, project=project, role=Role.CURATOR)
    return user


@pytest.fixture
def six_prompts(project):
    """60 preference pairs over six distinct prompts: a FiFA selection of half runs short."""
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


def open_form(page, kind: str):
    page.click(f"#launch-{kind} > summary")
    return page.locator(f"form[data-kind={kind}]")


def assert_no_horizontal_scroll(page, name: str, screenshot) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        # Plotly redraws responsive charts a moment after the resize, later on a busy
        # machine: wait up to 5 s for the page to fit; an overflow that stays fails.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(
                "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth",
                timeout=5_000,
            )
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{width}px wide: {overflow}px horizontal scroll"
        screenshot(page, f"workspace-{name}-{width}", full_page=True)


@pytest.mark.usefixtures("tiny_embeddings")
def test_an_admin_launches_fifa_from_the_form_sees_it_finish_and_reads_its_charts(
    page, login, screenshot, project, six_prompts
):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/jobs/")
    form = open_form(page, "fifa")
    # Defaults are prefilled from the registry; only what differs is typed.
    defaults = AVAILABLE["fifa"].params.defaults()
    assert form.locator("input[name=k]").input_value() == str(defaults["k"])
    assert form.locator("input[name=greedy]").is_checked() == defaults["greedy"]
    form.locator("input[name=folds]").fill("3")
    form.locator("input[name=epochs]").fill("2")
    form.locator("input[name=keep_fraction]").fill("0.5")
    form.locator("select[name=when_short]").select_option("fill")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/jobs/?launched=*", timeout=60_000)

    job = Job.objects.get(project=project, kind="fifa")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["keep_fraction"] == 0.5 and job.params["folds"] == 3
    assert job.created_by.username == "alice"
    row = page.locator(f"#job-{job.id}")
    assert row.locator("[data-field=status]").text_content() == "succeeded"
    assert row.locator("progress").evaluate("p => p.value") == 100
    assert "alice" in row.text_content()  # admins see the username next to the pseudonym
    open_form(page, "fifa")
    page.click("#launch-fifa details.selection > summary")
    assert_no_horizontal_scroll(page, "jobs", screenshot)

    page.set_viewport_size({"width": 1400, "height": 900})
    row.locator("a").click()
    page.wait_for_url(f"**/jobs/{job.id}/")
    page.wait_for_selector("#chart-importance .main-svg")
    # The histogram: kept and dropped bars stacked; margin, quality, diversity: a box per group.
    assert page.locator("#chart-importance g.trace.bars").count() == 2
    for metric in ("margin", "quality", "diversity"):
        page.wait_for_selector(f"#chart-{metric} .main-svg")
        assert page.locator(f"#chart-{metric} g.trace.boxes").count() == 2
    reason = page.locator("#short-reason").text_content()
    assert "Why fewer than asked" in reason and job.result["short_reason"] in reason
    assert str(job.result["requested"]) in page.locator("#kept-summary").text_content()
    margins = page.locator("#kept-vs-random tbody tr").first.locator("td")
    assert margins.nth(0).text_content() == f"{job.result['mean_margin']['kept']:.3f}"
    assert page.errors == []
    assert_no_horizontal_scroll(page, "job-fifa", screenshot)


def test_a_curator_launches_an_export_sees_it_finish_and_reads_its_splits(
    page, login, screenshot, project, carol, six_prompts
):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/jobs/")
    form = open_form(page, "export")
    form.locator("input[name=test_fraction]").fill("0.25")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/jobs/?launched=*", timeout=60_000)
    job = Job.objects.get(project=project, kind="export")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["test_fraction"] == 0.25 and job.created_by == carol
    row = page.locator(f"#job-{job.id}")
    assert row.locator("[data-field=status]").text_content() == "succeeded"
    assert "carol" not in row.text_content()  # curators see pseudonyms only
    row.locator("a").click()
    page.wait_for_url(f"**/jobs/{job.id}/")
    table = page.locator("#result-table").text_content()
    for split, rows in job.result["rows"].items():
        assert f"Rows in {split}" in table and str(rows) in table
    page.click("text=Datasets page: manifest and downloads")
    page.wait_for_url(f"**/projects/{project.id}/datasets/")


def test_the_list_shows_live_progress_and_cancels_a_running_job(
    page, login, screenshot, project, carol
):
    job = Job.objects.create(
        project=project, kind=JobKind.EXPORT, status=JobStatus.RUNNING, progress=0.1
    )
    job_progress(job_id=job.id, fraction=0.1, message="reading items")
    login(page, "carol")
    page.goto(f"/projects/{project.id}/jobs/")
    row = page.locator(f"#job-{job.id}")
    assert row.locator("[data-field=message]").text_content() == "reading items"
    job_progress(job_id=job.id, fraction=0.6, message="writing splits")
    # The page polls the jobs API: the new progress appears without a reload.
    page.wait_for_function(
        f"() => document.querySelector('#job-{job.id} progress').value === 60", timeout=10_000
    )
    assert row.locator("[data-field=message]").text_content() == "writing splits"
    screenshot(page, "workspace-jobs-running")
    row.locator("button[data-action=cancel]").click()
    page.wait_for_function(
        f"() => document.querySelector('#job-{job.id} [data-field=status]').textContent === 'cancelled'"
    )
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert row.locator("button[data-action=cancel]").is_hidden()
    assert row.locator("button[data-action=retry]").is_visible()


def test_a_running_job_page_follows_progress_and_shows_the_result_when_it_ends(
    page, login, project
):
    job = Job.objects.create(project=project, kind=JobKind.REWARD, status=JobStatus.RUNNING)
    job_progress(job_id=job.id, fraction=0.2, message="training fold 1")
    login(page, "alice")
    page.goto(f"/projects/{project.id}/jobs/{job.id}/")
    assert page.locator("#job-message").text_content() == "training fold 1"
    job_progress(job_id=job.id, fraction=0.7, message="training fold 3")
    page.wait_for_function("() => document.getElementById('job-progress').value === 70")
    job_finish(job_id=job.id, result={"pairs": 120, "heldout_accuracy": 0.8})
    # The page reloads once the job has ended and shows the kind's summary.
    page.wait_for_selector("#result-table")
    table = page.locator("#result-table").text_content()
    assert "Held-out accuracy" in table and "0.800" in table and "120" in table
    assert page.locator("#job-status").text_content() == "succeeded"


def test_an_admin_retries_a_failed_job(page, login, project):
    # A FiFA job on a project without pairs fails again on retry: the attempt is what counts.
    job = Job.objects.create(
        project=project, kind=JobKind.FIFA, status=JobStatus.FAILED, error="worker lost"
    )
    login(page, "alice")
    page.goto(f"/projects/{project.id}/jobs/")
    row = page.locator(f"#job-{job.id}")
    assert row.locator("[data-field=message]").text_content() == "worker lost"
    row.locator("button[data-action=retry]").click()
    page.wait_for_function(
        f"() => document.querySelector('#job-{job.id} [data-field=message]').textContent.includes('non-tie pairs')"
    )
    job.refresh_from_db()
    assert job.attempts == 1 and "non-tie pairs" in job.error
    assert row.locator("[data-field=status]").text_content() == "failed"


def test_a_bad_parameter_is_shown_next_to_its_field(page, login, project):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/jobs/")
    form = open_form(page, "fifa")
    form.locator("input[name=keep_fraction]").fill("2")
    form.locator("button[type=submit]").click()
    error = form.locator("[data-param=keep_fraction] [data-error-for=keep_fraction]")
    error.wait_for(state="visible")
    assert "keep_fraction" in error.text_content()
    assert form.locator("input[name=keep_fraction]").get_attribute("aria-invalid") == "true"
    # A folded selection parameter unfolds to show its error.
    form.locator("input[name=keep_fraction]").fill("0.5")
    # Typed while folded (as a value restored by the browser would be): the error unfolds it.
    form.locator("input[name=created_after]").evaluate("input => { input.value = 'not a date'; }")
    form.locator("button[type=submit]").click()
    error = form.locator("[data-error-for=created_after]")
    error.wait_for(state="visible")
    assert form.locator("details.selection").evaluate("d => d.open")
    assert not Job.objects.filter(project=project).exists()


def test_a_suspects_page_ranks_flagged_pairs_and_links_each_item(
    page, login, screenshot, project, carol
):
    job = scored_job(project, pairs=15, kind=JobKind.SUSPECTS)
    flagged = PairScore.objects.filter(job=job, suspect=True)
    job.result = {
        "pairs": 15,
        "suspects": flagged.count(),
        "estimated_noise_rate": 0.4,
        "estimated_noise_count": 6,
        "expected_precision": sum(s.suspect_confidence for s in flagged) / flagged.count(),
        "refitted": True,
        "suspect_threshold": 0.5,
        "flag_share": 0.1,
        "max_flagged": None,
    }
    job.save()
    expected = list(
        PairScore.objects.filter(job=job, suspect=True)
        .order_by("-suspect_confidence", "id")
        .values_list("item_id", "suspect_confidence")
    )
    login(page, "carol")
    page.goto(f"/projects/{project.id}/jobs/{job.id}/")
    rows = page.locator("#suspect-table tbody tr")
    assert rows.count() == len(expected) > 0
    for index, (item_id, confidence) in enumerate(expected):
        cells = rows.nth(index).locator("td")
        assert cells.nth(1).text_content() == f"{confidence:.3f}"
        assert cells.nth(2).locator("a").get_attribute("href") == (
            f"/projects/{project.id}/items/{item_id}/"
        )
    assert "Question number" in rows.first.text_content()
    # The noise estimate sits beside the ranking: read as text, the same numbers.
    assert page.locator("#noise-rate").text_content() == "40.0%"
    assert page.locator("#noise-count").text_content() == "6 of 15 pairs"
    precision = 100 * job.result["expected_precision"]
    assert page.locator("#expected-precision").text_content() == f"{precision:.1f}%"
    assert page.locator("#flagged-count").text_content() == str(len(expected))
    page.set_viewport_size({"width": 1400, "height": 900})
    estimate = page.locator("#suspect-estimate").bounding_box()
    table = page.locator("#suspect-table").bounding_box()
    assert estimate["x"] + estimate["width"] <= table["x"]  # side by side when wide
    assert_no_horizontal_scroll(page, "job-suspects", screenshot)
    page.set_viewport_size({"width": 1400, "height": 900})
    rows.first.locator("a").click()
    page.wait_for_url(f"**/projects/{project.id}/items/{expected[0][0]}/")


def test_annotators_are_refused_and_outsiders_see_nothing(page, login, project, charlie):
    job = Job.objects.create(project=project, kind=JobKind.EXPORT)
    login(page, "bob")
    assert page.goto(f"/projects/{project.id}/jobs/").status == 403
    assert page.goto(f"/projects/{project.id}/jobs/{job.id}/").status == 403
    page.context.clear_cookies()
    login(page, "charlie")
    assert page.goto(f"/projects/{project.id}/jobs/").status == 404
    assert page.goto(f"/projects/{project.id}/jobs/{job.id}/").status == 404

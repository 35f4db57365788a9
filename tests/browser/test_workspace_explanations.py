"""The explanations pages in Chromium: ranked features, a feature's examples with their spans,
the group-effect plot, the two actions, at phone, tablet and desktop widths."""

from __future__ import annotations

import pytest

from annotation.models import Membership, Response, Role
from curation.models import ExplanationPair, Job, ReviewEntry
from tests.explanation_world import PHRASE, store_explanation
from tests.factories import UserFactory

WIDTHS = (360, 800, 1400)
HOSTILE = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'


@pytest.fixture
def explained(project, settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    job = store_explanation(project)
    carol = UserFactory(username="carol")
    Membership.objects.create(user=carol, project=project, role=Role.CURATOR)
    # A response of an example carries markup: it must show as text, never run.
    pair = ExplanationPair.objects.filter(explanation__job=job).first()
    for response_id in (pair.response_a_id, pair.response_b_id):
        response = Response.objects.get(pk=response_id)
        response.text = f"{response.text} {HOSTILE}"
        response.save(update_fields=["text"])
    return job


def _no_horizontal_scroll(page, width: int) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{width}px wide: {overflow}px horizontal scroll"


def test_a_curator_reads_the_ranked_features_and_a_features_examples_at_every_width(
    page, login, screenshot, project, explained
):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/explanations/")
    page.wait_for_selector("#explanations[data-ready='1']")
    assert page.locator("nav a", has_text="Explanations").count() == 1
    assert not page.errors, page.errors
    rows = page.locator("#features-table tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).get_attribute("data-index") == "0"
    assert "significant" in (rows.nth(0).get_attribute("class") or "")
    assert "0.90 [0.50, 1.30]" in rows.nth(0).inner_text()
    assert "hedging" in rows.nth(1).inner_text()
    assert "explains 70%" in page.locator("#probe-summary").inner_text()
    assert page.locator("#chart-history svg.main-svg").count() >= 1
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)
        _no_horizontal_scroll(page, width)
        screenshot(page, f"workspace-explanations-{width}", full_page=True)

    page.set_viewport_size({"width": 1400, "height": 900})
    rows.nth(0).locator("a").click()
    page.wait_for_selector("#feature[data-ready='1']")
    assert not page.errors, page.errors
    assert "sincerely hope" in page.locator("#feature-title").inner_text()
    examples = page.locator("#examples li.example")
    assert examples.count() >= 4
    for i in range(examples.count()):
        left = examples.nth(i).locator(".side.high")
        # Each example reads from the side with the phrase, which is highlighted there.
        assert PHRASE in left.inner_text()
        assert left.locator("mark.span-high").first.inner_text().lower() == "sincerely hope"
    # The markup in a response is shown as text and never ran.
    assert page.locator("#examples", has_text="<script>").count() == 1
    assert page.evaluate("window.__xss") is None
    assert page.locator("#examples img").count() == 0
    chart = page.locator("#chart-groups")
    assert chart.locator("svg.main-svg").count() >= 1
    assert "country = US" in chart.inner_text()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)
        _no_horizontal_scroll(page, width)
        screenshot(page, f"workspace-explanation-feature-{width}", full_page=True)


def test_the_two_actions_queue_the_pairs_and_start_an_export_without_them(
    page, login, project, explained
):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/explanations/{explained.id}/features/0/")
    page.wait_for_selector("#feature[data-ready='1']")
    page.fill("#review-top", "")
    page.click("#review-button")
    error = page.locator("#action-error")
    assert error.get_attribute("data-error-for") == "top"
    assert not ReviewEntry.objects.exists()

    page.fill("#review-top", "3")
    page.click("#review-button")
    page.wait_for_url("**/review/?source=explanation")
    assert "3 items added to the review queue" in page.locator(".flash").inner_text()
    assert ReviewEntry.objects.filter(source="explanation").count() == 3

    page.goto(f"/projects/{project.id}/explanations/{explained.id}/features/0/")
    page.fill("#export-top", "3")
    page.click("#export-button")
    page.wait_for_url("**/jobs/*/")
    export = Job.objects.filter(project=project, kind="export").get()
    assert export.params["explanation_job"] == explained.id
    assert export.params["explanation_feature"] == 0 and export.params["explanation_top"] == 3

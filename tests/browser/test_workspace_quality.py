"""The quality page in headless Chromium: every chart drawn, the annotator table, pseudonyms, widths."""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from annotation.models import Membership, Role
from annotation.pseudonyms import pseudonym
from curation import charts
from tests.curation.test_charts import build_quality_project
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (360, 768, 1400)


@pytest.fixture
def filled(project):
    from django.core.cache import cache

    cache.clear()
    world = build_quality_project(project, items=8)
    carol = UserFactory(username="carol")
    Membership.objects.create(user=carol, project=project, role=Role.CURATOR)
    world["curator"] = carol
    return world


def open_quality(page, project) -> None:
    page.goto(f"/projects/{project.id}/quality/")
    page.wait_for_selector("#quality[data-ready='1']")


def chart_elements(page) -> list:
    return page.locator("#quality .chart").all()


def assert_every_chart_is_drawn(page) -> int:
    charts = chart_elements(page)
    # Agreement, coverage, throughput, profiles and one per label distribution (at least four).
    assert len(charts) >= 8
    for chart in charts:
        assert chart.locator("svg.main-svg").count() >= 1, chart.get_attribute("data-chart")
    return len(charts)


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


def test_an_admin_sees_every_chart_and_usernames_next_to_pseudonyms(
    page, login, screenshot, project, filled
):
    login(page, "alice")
    open_quality(page, project)
    assert not page.errors, page.errors
    assert_every_chart_is_drawn(page)
    table = page.locator("#annotator-table tbody")
    assert table.locator("tr").count() == len(filled["users"])
    first = filled["users"][0]
    row = table.locator("tr", has_text=pseudonym(first.id, str(project.id)))
    assert first.username in row.inner_text()
    # The careless annotator misses the gold item: accuracy 0.00 on one gold item.
    careless = filled["users"][-1]
    assert "0.00 (1)" in table.locator("tr", has_text=careless.username).inner_text()
    agreement_rows = page.locator("#agreement-table tbody tr")
    assert agreement_rows.count() == project.questions.count()
    # Cohen's kappa next to alpha and Fleiss' kappa: the mean over annotator pairs, as served.
    assert page.locator("#agreement-table th", has_text="Cohen's kappa").count() == 1
    served = {
        q["question"]: q["cohen_kappa"]
        for q in charts.agreement_over_time(project=project)["questions"]
    }
    cohen = served["preference"]
    assert cohen is not None and cohen["pairs"] == 21  # 7 annotators sharing every item
    row = agreement_rows.filter(has_text="preference")
    assert row.locator("td[data-cohen]").inner_text() == f"{cohen['kappa']:.3f} (21 pairs)"
    assert agreement_rows.filter(has_text="ranking").locator("td[data-cohen]").inner_text() == "–"
    assert_no_horizontal_scroll(page, "quality-admin", screenshot)


def test_a_curator_sees_every_chart_and_only_pseudonyms(page, login, screenshot, project, filled):
    login(page, "carol")
    open_quality(page, project)
    assert not page.errors, page.errors
    assert_every_chart_is_drawn(page)
    text = page.locator("#annotator-table").inner_text()
    for user in filled["users"]:
        assert pseudonym(user.id, str(project.id)) in text
        assert user.username not in text
    assert page.locator("#annotator-table th", has_text="Username").count() == 0
    # The profile breakdown pools the one "man" into other/hidden.
    page.select_option("#profile-field", "gender")
    page.wait_for_timeout(200)
    ticks = page.eval_on_selector_all(
        "#chart-profiles .xtick text", "elements => elements.map((e) => e.textContent)"
    )
    assert "woman" in ticks and "other/hidden" in ticks and "man" not in ticks
    assert_no_horizontal_scroll(page, "quality-curator", screenshot)


def test_an_annotator_of_the_project_gets_the_403_page(page, login, project, filled):
    login(page, "bob")
    response = page.goto(f"/projects/{project.id}/quality/")
    assert response.status == 403

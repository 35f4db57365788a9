"""The datasets pages in headless Chromium: publish from the form, download, compare, field errors, widths."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from annotation.models import Membership, Role
from curation.models import DatasetVersion
from tests.curation.test_charts import build_quality_project
from tests.curation.test_dataset_compare import flip, independent_counts, rows_of
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (360, 768, 1400)


@pytest.fixture
def filled(project):
    world = build_quality_project(project, items=8)
    carol = UserFactory(username="carol")
    Membership.objects.create(user=carol, project=project, role=Role.CURATOR)
    world["curator"] = carol
    return world


def publish_from_form(page, project, name: str) -> DatasetVersion:
    page.goto(f"/projects/{project.id}/datasets/")
    page.fill("input[name=name]", name)
    page.select_option("select[name=format]", "trl_preference")
    page.fill("input[name=test_fraction]", "0.25")
    page.fill("input[name=seed]", "4")
    page.check("input[name=include_annotators]")
    page.check("input[name=profile_fields][value=gender]")
    page.click("#publish-form button[type=submit]")
    page.wait_for_url("**/datasets/?job=*")
    version = DatasetVersion.objects.get(project=project, name=name)
    page.wait_for_selector(f"#version-{version.version}")
    return version


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


def test_an_admin_publishes_a_version_sees_its_splits_and_downloads_a_file(
    page, login, screenshot, project, filled
):
    login(page, "alice")
    version = publish_from_form(page, project, "first cut")
    assert version.job.params["test_fraction"] == 0.25 and version.job.params["seed"] == 4
    assert version.job.params["profile_fields"] == ["gender"]
    article = page.locator(f"#version-{version.version}")
    for split, rows in version.row_counts.items():
        assert article.locator(f"[data-split='{split}']").inner_text() == str(rows)
    assert sum(version.row_counts.values()) > 0
    article.locator("summary", has_text="Files").click()
    entry = next(f for f in version.manifest["files"] if f["path"].endswith(".jsonl"))
    with page.expect_download() as download:
        article.locator(f"a[href$='{entry['path']}']").click()
    data = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert_no_horizontal_scroll(page, "datasets-admin", screenshot)


def test_a_bad_parameter_is_shown_next_to_its_field_and_nothing_is_published(
    page, login, project, filled
):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/datasets/")
    page.fill("input[name=min_agreement]", "2")
    page.click("#publish-form button[type=submit]")
    error = page.locator("[data-error-for=min_agreement]")
    assert "min_agreement" in error.inner_text()
    assert page.locator("input[name=min_agreement]").input_value() == "2"
    assert not DatasetVersion.objects.filter(project=project).exists()
    # Profile columns without pseudonyms: refused, next to the profile fields.
    page.check("input[name=profile_fields][value=gender]")
    page.fill("input[name=min_agreement]", "")
    page.click("#publish-form button[type=submit]")
    # The click only starts the form's post: wait for the page it answers with.
    page.wait_for_selector("[data-error-for=profile_fields]")
    assert page.locator("[data-error-for=min_agreement]").count() == 0
    assert page.locator("[data-error-for=profile_fields]").count() == 1
    assert not DatasetVersion.objects.filter(project=project).exists()


def test_a_curator_compares_two_versions_and_the_counts_match_the_files(
    page, login, screenshot, project, filled
):
    login(page, "carol")
    first = publish_from_form(page, project, "before")
    flip(filled["items"][0])
    filled["items"][1].delete()
    second = publish_from_form(page, project, "after")
    page.select_option("select[name=a]", str(first.id))
    page.select_option("select[name=b]", str(second.id))
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#comparison")
    expected = independent_counts(rows_of(first), rows_of(second))
    for key, count in expected.items():
        assert page.locator(f"[data-count={key}]").inner_text() == str(count), key
    assert expected["relabelled"] >= 1 and expected["rows_removed"] >= 1
    assert not page.errors, page.errors
    assert_no_horizontal_scroll(page, "datasets-compare", screenshot)


def test_an_annotator_of_the_project_gets_the_403_page(page, login, project, filled):
    login(page, "bob")
    assert page.goto(f"/projects/{project.id}/datasets/").status == 403
    assert page.goto(f"/projects/{project.id}/datasets/compare/").status == 403

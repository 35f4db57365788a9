"""The data explorer in headless Chromium: search, filter, sort, select and act, similar items."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from django.utils import timezone

from annotation.models import Item, Role
from annotation.services import items_import
from curation.jobs.kinds.embed import project_texts
from curation.models import Artifact, Job, JobKind, JobStatus, ReviewEntry
from curation.storage import save_array_atomic
from tests.browser.test_workspace_webhooks import assert_fits_every_width
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def erin(project):
    """A curator of the project."""
    user = UserFactory(username="erin")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


@pytest.fixture
def imported(project, tmp_path, settings):
    """40 items (every fourth tagged "math", one about a violin) and an embedding job over them."""
    settings.BALLOT_STORAGE_ROOT = str(tmp_path)
    lines = [
        json.dumps(
            {
                "external_id": f"x-{n}",
                "prompt": f"Prompt number {n} about {'a violin' if n == 7 else 'the weather'} "
                "with a long tail of words that a narrow screen must wrap",
                "responses": [f"First reply {n}", f"Second reply {n}"],
                "tags": ["math"] if n % 4 == 0 else ["chat"],
                "priority": float(n % 5),
            }
        )
        for n in range(40)
    ]
    items_import(project=project, lines=lines, fmt="native")
    texts = project_texts(project)
    matrix = np.random.default_rng(1).normal(size=(len(texts), 8)).astype(np.float32)
    job = Job.objects.create(
        project=project,
        kind=JobKind.EMBED,
        status=JobStatus.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    relative = f"projects/{project.id}/jobs/{job.id}/embeddings.npy"
    path = save_array_atomic(relative, matrix)
    Artifact.objects.create(
        project=project,
        job=job,
        kind="embeddings",
        path=relative,
        sha256="0" * 64,
        size=path.stat().st_size,
    )
    return dict(Item.objects.filter(project=project).values_list("external_id", "id"))


def shown_ids(page) -> list[int]:
    return [
        int(i)
        for i in page.eval_on_selector_all("tr[data-item]", "rows => rows.map(r => r.dataset.item)")
    ]


def test_an_admin_searches_filters_sorts_selects_and_tags(
    page, login, screenshot, project, alice, imported
):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/items/")
    assert page.locator("nav.workspace-nav a[aria-current=page]").inner_text() == "Items"
    assert (
        page.locator("tr[data-item] .explorer-title a")
        .first.inner_text()
        .startswith("Prompt number 0 about the weather")
    )
    assert_fits_every_width(page, "explorer", screenshot)

    page.fill("#f-q", "violin")
    page.click("#explorer-apply")
    page.wait_for_url(re.compile(r"q=violin"))
    assert shown_ids(page) == [imported["x-7"]]

    page.goto(f"/projects/{project.id}/items/")
    page.click("details.explorer-more summary")
    page.fill("#f-tag", "math")
    page.select_option("#f-sort", "-priority")
    page.click("details.explorer-more button[type=submit]")
    page.wait_for_url(re.compile(r"tag=math"))
    assert "sort=-priority" in page.url
    expected = sorted((n for n in range(0, 40, 4)), key=lambda n: (-(n % 5), -imported[f"x-{n}"]))
    assert shown_ids(page) == [imported[f"x-{n}"] for n in expected]
    # The address is the view: opened afresh, it shows the same rows.
    shared = page.url
    page.goto(shared)
    assert shown_ids(page) == [imported[f"x-{n}"] for n in expected]

    first, second = shown_ids(page)[:2]
    page.check(f"tr[data-item='{first}'] input.select-item")
    page.check(f"tr[data-item='{second}'] input.select-item")
    page.select_option("#bulk-action", "tag_add")
    page.fill("#bulk-value", "picked")
    page.click("#bulk-submit")
    assert "This will touch 2 items" in page.locator("#confirm-count").inner_text()
    screenshot(page, "workspace-explorer-confirm-1400")
    page.click("#confirm-apply")
    page.wait_for_url(re.compile(r"tag=math"))
    assert "done for 2 items" in page.locator(".flash").inner_text()
    tagged = {i.id for i in Item.objects.filter(project=project) if "picked" in i.tags}
    assert tagged == {first, second}
    assert page.errors == []


def test_a_curator_sends_a_whole_filter_to_review_and_sees_similar_items(
    page, login, screenshot, project, erin, imported
):
    login(page, "erin")
    page.goto(f"/projects/{project.id}/items/?tag=math&page=1")
    assert len(shown_ids(page)) == 10
    page.check("#scope-filter")
    page.select_option("#bulk-action", "review")
    page.fill("#bulk-value", "check the math")
    page.click("#bulk-submit")
    assert "This will touch 10 items" in page.locator("#confirm-count").inner_text()
    page.click("#confirm-apply")
    page.wait_for_url(re.compile(r"tag=math"))
    entries = ReviewEntry.objects.filter(item__project=project)
    assert sorted(e.item_id for e in entries) == sorted(imported[f"x-{n}"] for n in range(0, 40, 4))
    assert {(e.reason, e.created_by_id) for e in entries} == {("check the math", erin.id)}

    page.click(f"tr[data-item='{imported['x-4']}'] a.similar-link")
    page.wait_for_url(re.compile(r"/similar/$"))
    assert page.locator("#similar-table tr[data-item]").count() == 10
    assert imported["x-4"] not in shown_ids(page)
    assert_fits_every_width(page, "explorer-similar", screenshot)
    assert page.errors == []


def test_an_annotator_is_refused_the_explorer(page, login, project, bob):
    login(page, "bob")
    response = page.goto(f"/projects/{project.id}/items/")
    assert response.status == 403

"""The routing page in headless Chromium: the budget curve, routes with reasons, the send action, widths."""

from __future__ import annotations

import json

import pytest

from annotation.models import Membership, Role
from annotation.services import items_import
from curation.models import JobStatus
from curation.services.jobs import job_create
from tests.curation.conftest import tiny_embeddings, tiny_model_root  # noqa: F401
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (360, 768, 1400)


def judged_rows(n: int) -> list[dict]:
    """Items with a human label and a judge that errs on every third (its orders disagree)."""
    rows = []
    for i in range(n):
        human = i % 2
        wrong = i % 3 == 0
        judge = {"question": "preference", "chosen": 1 - human if wrong else human}
        judge["rejected"] = 1 - judge["chosen"]
        rows.append(
            {
                "external_id": f"r{i}",
                "prompt": f"question {i}: " + "explain this " * (1 + i % 7),
                "responses": [
                    {"text": f"first answer {i} " + "word " * (i % 5)},
                    {"text": f"second answer {i}"},
                ],
                "metadata": {
                    "judge_orders": {
                        "stub": {
                            "original": judge["chosen"] + 1,
                            "swapped": (2 - judge["chosen"]) if wrong else judge["chosen"] + 1,
                        }
                    }
                },
                "annotations": [
                    {
                        "annotator": "expert",
                        "answers": [
                            {"question": "preference", "chosen": human, "rejected": 1 - human}
                        ],
                    },
                    {"source": "ai", "judge": "stub", "answers": [judge]},
                ],
            }
        )
    return rows


@pytest.fixture
def routed(project, alice, tiny_embeddings):  # noqa: F811
    items_import(project=project, lines=[json.dumps(r) for r in judged_rows(36)], fmt="native")
    job = job_create(
        project=project,
        kind="route",
        params={"budget": 0.25, "strategy": "error", "folds": 3, "clusters": 2, "min_labelled": 10},
        user=alice,
        in_thread=False,
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    carol = UserFactory(username="carol")
    Membership.objects.create(user=carol, project=project, role=Role.CURATOR)
    return job


def test_a_curator_reads_the_curve_and_the_routes_at_every_width(
    page, login, screenshot, project, routed
):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/routing/")
    page.wait_for_selector("#routing[data-ready='1']")
    assert not page.errors, page.errors
    assert page.locator("nav a", has_text="Routing").count() == 1
    chart = page.locator("#chart-curve")
    assert chart.locator("svg.main-svg").count() >= 1
    legend = chart.inner_text()
    assert "random" in legend and "judge error" in legend
    assert page.locator("#routing-counts").inner_text() == "9 to humans, 27 to the judge"
    rows = page.locator("#routes-table tbody tr")
    assert rows.count() == 36
    first = rows.nth(0)
    assert "To the human: predicted judge error" in first.inner_text()
    # The judge errs exactly where its orders disagree: those items lead.
    assert "orders disagree" in first.inner_text()
    page.select_option("#route-select", "ai")
    page.click("#route-filter button")
    # The old page is ready too: wait for the filtered one's address first.
    page.wait_for_url("**route=ai**")
    page.wait_for_selector("#routing[data-ready='1']")
    assert page.locator("#routes-table tbody tr").count() == 27
    assert page.locator("#routes-table tbody tr[data-route='human']").count() == 0
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{width}px wide: {overflow}px horizontal scroll"
        screenshot(page, f"workspace-routing-{width}", full_page=True)


def test_sending_without_a_judge_shows_the_reason_and_starts_nothing(page, login, project, routed):
    login(page, "carol")
    page.goto(f"/projects/{project.id}/routing/")
    page.wait_for_selector("#routing[data-ready='1']")
    page.click("#send-button")
    error = page.locator("#send-error")
    assert error.get_attribute("data-error-for") == "judge"
    assert "Choose the judge" in error.inner_text()
    from curation.models import Job

    assert not Job.objects.filter(project=project, kind="label-ai").exists()

"""The judges page in headless Chromium: add a judge, label the items, test it on one, read its record.

The judge is a real stub OpenAI-compatible server on 127.0.0.1, which the test allows.
"""

from __future__ import annotations

import pytest

from annotation.models import Annotation, Role, Source
from curation.models import Judge
from tests.browser.test_workspace_webhooks import assert_fits_every_width
from tests.factories import ItemFactory, MembershipFactory, UserFactory
from tests.judge_stub import JudgeStub

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_BACKOFF_SECONDS = 0.01
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.fixture
def stub():
    server = JudgeStub().start()
    yield server
    server.stop()


def test_an_admin_adds_a_judge_labels_items_tests_one_and_reads_its_record(
    page, login, screenshot, project, alice, stub
):
    items = [
        ItemFactory(project=project, responses=[f"GOOD answer {i}.", f"weak {i}.", f"meh {i}."])
        for i in range(3)
    ]
    login(page, "alice")
    page.goto(f"/projects/{project.id}/judges/")
    assert page.locator(".workspace-nav a[aria-current=page]").inner_text() == "Judges"
    page.fill("#judge-name", "stub-judge")
    page.fill("#judge-base-url", stub.base_url)
    page.fill("#judge-model", "stub-1")
    page.fill("#judge-api-key", "sk-browser-secret")
    page.click("#judge-create")
    card = page.locator(".judge-card").first
    card.wait_for()
    judge = Judge.objects.get(name="stub-judge")
    assert "sk-browser-secret" not in page.content()
    assert card.locator(".judge-key").inner_text() == "stored (encrypted)"

    card.locator(".judge-label").click()
    # The form only enqueues: the job page shows it running in a thread, then finished.
    page.wait_for_url("**/jobs/**")
    page.wait_for_selector("#job-status.succeeded", timeout=60_000)
    assert Annotation.objects.filter(source=Source.AI).count() == 3

    page.goto(f"/projects/{project.id}/judges/")
    page.wait_for_selector(".judge-chart[data-drawn='1']")
    row = page.locator(".judge-stats tbody tr").first
    assert "stub-judge@v1" in row.inner_text()
    assert page.locator(".judge-chart .main-svg").count() >= 1
    assert_fits_every_width(page, "judges-record", screenshot)

    page.locator(".judge-test-item").first.fill(str(items[1].id))
    page.locator(".judge-test").first.click()
    result = page.locator("#judge-test-result")
    result.wait_for()
    assert "stub-judge@v1" in result.inner_text()
    preference = result.locator(".judge-question[data-question='preference']")
    assert preference.locator(".verdict-outcome").inner_text() == "label"
    # Three responses: every pair in both orders (weak vs meh has no GOOD: B twice, a tie).
    assert preference.locator(".judge-pair").count() == 3
    assert preference.locator(".raw-output").all_inner_texts() == ["A", "B", "A", "B", "B", "B"]
    assert_fits_every_width(page, "judges-test", screenshot)
    assert judge.versions.count() == 1
    assert page.errors == []


def test_a_curator_tests_but_cannot_configure(page, login, screenshot, project, stub):
    erin = UserFactory(username="erin")
    MembershipFactory(user=erin, project=project, role=Role.CURATOR)
    from curation.judges.services import judge_create

    judge_create(
        project=project,
        user=None,
        data={"name": "shared", "backend": "openai", "base_url": stub.base_url, "model": "m"},
    )
    login(page, "erin")
    page.goto(f"/projects/{project.id}/judges/")
    assert page.locator("#judge-add-form").count() == 0
    assert page.locator(".judge-edit").count() == 0
    page.wait_for_selector(".judge-chart .chart-empty, .judge-chart[data-drawn='1']")
    assert "No verdicts yet" in page.locator(".judge-stats").inner_text()
    assert_fits_every_width(page, "judges-curator", screenshot)
    assert page.errors == []

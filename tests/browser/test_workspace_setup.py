"""Set-up, import and members pages in headless Chromium, as admin, curator, annotator and outsider."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.models import Item, Membership, Project, Question, Role
from annotation.pseudonyms import pseudonym
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAIRS = Path(__file__).resolve().parents[2] / "examples" / "pairs.jsonl"
WIDTHS = (360, 768, 1400)


@pytest.fixture
def dana(project):
    """A curator of the project."""
    user = UserFactory(username="dana", email="dana@example.org")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def assert_fits_every_width(page, name: str, screenshot) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        measured = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
        )
        assert measured["scroll"] <= measured["client"], (name, width, measured)
        screenshot(page, f"workspace-{name}-{width}", full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def card(page, index: int):
    return page.locator(f'#question-list li[data-index="{index}"]')


def add_question(page, kind: str) -> None:
    page.select_option("#new-question-kind", kind)
    page.click("#add-question")


@pytest.mark.slow
def test_an_admin_creates_a_project_with_two_questions_sees_the_preview_and_edits_one(
    page, login, screenshot, alice
):
    login(page, "alice")
    page.click("#new-project")
    page.wait_for_url("**/projects/new/")
    page.fill("#id_name", "Browser project")
    page.fill("#id_overlap", "2")
    page.fill("#id_instructions", "Read **every** response.\n\n<script>window.pwned = 1</script>")
    page.wait_for_selector("#instructions-preview strong:text('every')")
    assert page.locator("#instructions-preview script").count() == 0

    add_question(page, "pairwise")
    card(page, 0).locator(".question-name").fill("preference")
    card(page, 0).locator(".question-prompt").fill("Which response is better?")
    card(page, 0).locator(".allow-tie").uncheck()
    add_question(page, "rating")
    rating = card(page, 1)
    rating.locator(".question-name").fill("quality")
    rating.locator(".add-aspect").click()
    rating.locator(".aspect-name").nth(1).fill("honesty")
    rating.locator(".scale-max").fill("7")

    # The preview is the labeling page itself, with both questions on a sample item.
    frame = page.frame_locator("#label-preview")
    frame.locator(".question.kind-rating").wait_for()
    assert (
        frame.locator(".question.kind-pairwise .question-title")
        .inner_text()
        .endswith("Which response is better?")
    )
    assert frame.locator(".preview-banner").is_visible()
    # No tie button: allow_tie was unchecked; the rating rows have the 1-7 scale and two aspects.
    frame.locator(".question.kind-rating").get_by_text("honesty").first.wait_for()
    assert "Tie" not in frame.locator(".question.kind-pairwise").inner_text()
    screenshot(page, "workspace-setup-new-preview", full_page=True)

    page.click("#save-setup")
    page.wait_for_url("**/settings/")
    project = Project.objects.get(name="Browser project")
    assert project.overlap == 2 and "**every**" in project.instructions
    assert Membership.objects.get(project=project, user__username="alice").role == Role.ADMIN
    rows = list(Question.objects.filter(project=project).order_by("position"))
    assert [(q.kind, q.name, q.position) for q in rows] == [
        ("pairwise", "preference", 0),
        ("rating", "quality", 1),
    ]
    assert rows[0].config["allow_tie"] is False and rows[0].prompt == "Which response is better?"
    assert [a["name"] for a in rows[1].config["aspects"]] == ["helpfulness", "honesty"]
    assert rows[1].config["scale"]["max"] == 7

    # Edit: the rating question moves first and gets a prompt.
    card(page, 1).locator(".move-up").click()
    card(page, 0).locator(".question-prompt").fill("Rate each response")
    page.frame_locator("#label-preview").locator(
        ".question.kind-rating .question-title:has-text('Rate each response')"
    ).wait_for()
    page.click("#save-setup")
    # The page already shows "Project created.": wait for this save's own message.
    page.wait_for_selector(".flash:has-text('Project saved.')")
    rows = list(Question.objects.filter(project=project).order_by("position"))
    assert [(q.name, q.position, q.prompt) for q in rows] == [
        ("quality", 0, "Rate each response"),
        ("preference", 1, "Which response is better?"),
    ]
    assert page.evaluate("() => window.pwned") is None
    assert page.errors == []
    assert_fits_every_width(page, "setup", screenshot)


def test_a_bad_question_is_refused_with_the_error_next_to_its_field(page, login, project, alice):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/settings/")
    add_question(page, "rating")
    new = card(page, 4)
    new.locator(".aspect-row button").click()  # no aspect left
    # The preview leaves it out and says so until it is valid.
    page.wait_for_selector("#label-preview-note:not([hidden])")
    assert "question 5" in page.locator("#label-preview-note").inner_text()
    page.click("#save-setup")
    error = new.locator('[data-error-slot="config.aspects"] .field-error')
    assert error.inner_text() == "A rating question needs at least one aspect."
    assert Question.objects.filter(project=project).count() == 4


def test_answering_in_the_preview_sends_nothing(page, login, project, items, alice):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/settings/")
    # Only the set-up page's own previews may be requested; label.js would post its answers.
    previews = ("/projects/label-preview/", "/projects/instructions-preview/")
    sent: list[str] = []
    page.on(
        "request",
        lambda request: (
            sent.append(request.url)
            if request.method == "POST" and not request.url.endswith(previews)
            else None
        ),
    )
    page.evaluate("() => { window.confirm = () => true; }")
    for _ in range(3):  # keep only the pairwise question
        card(page, 1).locator(".delete-question").click()
    frame = page.frame_locator("#label-preview")
    frame.locator(".question.kind-ranking").wait_for(state="detached")
    frame.locator(".question.kind-pairwise button.choice[data-value=a]").click()
    frame.locator("#submit-button").click()
    status = frame.locator("#status")
    status.wait_for()
    assert status.inner_text() == "Preview: every answer is given. Nothing was saved."
    frame.locator("#skip-button").click()
    assert "Nothing was saved" in status.inner_text()
    assert sent == [] and not project.assignments.exists()
    assert Question.objects.filter(project=project).count() == 4  # nothing saved either


def test_a_curator_imports_a_file_after_seeing_the_detected_format_and_preview(
    page, login, screenshot, project, dana
):
    login(page, "dana")
    page.goto(f"/projects/{project.id}/import/")
    page.set_input_files("#import-file", str(PAIRS))
    page.click("#import-check")
    page.wait_for_selector("#detected-format:text('trl')")
    assert page.locator("#import-items .preview-item").count() == 5
    first = page.locator("#import-items .preview-item").first
    assert "How do I reverse a string in Python?" in first.inner_text()
    assert "preference: A ≻ B" in first.inner_text()
    assert page.locator("#upload-bar").get_attribute("value") == "100"
    assert not Item.objects.filter(project=project).exists()  # nothing before confirming
    screenshot(page, "workspace-import-preview", full_page=True)

    page.click("#import-confirm")
    page.wait_for_selector("#import-result:not([hidden])")
    assert page.locator('[data-stat="created"] dd').inner_text() == "8"
    assert page.locator('[data-stat="annotations"] dd').inner_text() == "8"
    assert Item.objects.filter(project=project).count() == 8
    assert page.errors == []
    assert_fits_every_width(page, "import", screenshot)


def test_an_admin_sees_bad_lines_numbered_before_importing_and_can_leave_them_out(
    page, login, screenshot, project, alice, tmp_path
):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(PAIRS.read_bytes() + b'{"prompt": "no replies"}\nnot json\n')
    login(page, "alice")
    page.goto(f"/projects/{project.id}/import/")
    page.set_input_files("#import-file", str(bad))
    page.click("#import-check")
    page.wait_for_selector("#import-errors:not([hidden])")
    lines = page.locator("#import-error-list li")
    assert [lines.nth(i).get_attribute("data-line") for i in range(lines.count())] == ["9", "10"]
    assert lines.nth(1).inner_text().startswith("Line 10:")
    # As it is, the import stops at the bad lines and writes nothing.
    page.click("#import-confirm")
    page.wait_for_selector("#import-result:not([hidden]) .error-list li")
    assert not Item.objects.filter(project=project).exists()
    page.check("#import-skip-invalid")
    page.click("#import-check")
    page.wait_for_selector("#detected-format:text('trl')")
    page.click("#import-confirm")
    page.wait_for_selector('[data-stat="skipped_invalid"] dd:text("2")')
    assert Item.objects.filter(project=project).count() == 8
    screenshot(page, "workspace-import-skipped", full_page=True)


def test_an_admin_adds_a_member_by_e_mail_and_changes_the_role(
    page, login, screenshot, project, alice
):
    erin = UserFactory(username="erin", email="erin@example.org")
    login(page, "alice")
    page.goto(f"/projects/{project.id}/members/")
    page.fill("#id_user", "erin@example.org")
    page.select_option("#id_role", "annotator")
    page.click("#member-add-form button[type=submit]")
    page.wait_for_selector(".flash")
    membership = Membership.objects.get(project=project, user=erin)
    assert membership.role == Role.ANNOTATOR
    row = page.locator(f'tr[data-membership="{membership.id}"]')
    assert "erin@example.org" in row.inner_text()
    row.locator("select.member-role").select_option("curator")
    row.locator(".member-role-form button").click()
    # The page already shows the first message: wait for this change's own.
    page.wait_for_selector(".flash:has-text('is now curator')")
    membership.refresh_from_db()
    assert membership.role == Role.CURATOR

    # The last admin cannot remove themselves; the reason shows on their row.
    own = Membership.objects.get(project=project, user=alice)
    page.evaluate("() => { window.confirm = () => true; }")
    page.locator(f'tr[data-membership="{own.id}"] .member-remove-form button').click()
    page.wait_for_selector(f'tr[data-membership="{own.id}"] .field-error')
    assert "at least one admin" in page.locator(f'tr[data-membership="{own.id}"]').inner_text()
    assert Membership.objects.filter(pk=own.pk).exists()
    assert_fits_every_width(page, "members", screenshot)


def test_a_curator_reads_members_as_pseudonyms_and_cannot_open_set_up(
    page, login, screenshot, project, bob, dana
):
    login(page, "dana")
    page.goto(f"/projects/{project.id}/members/")
    table = page.locator("#member-table").inner_text()
    assert pseudonym(bob.id, str(project.id)) in table
    assert "bob" not in table and "alice" not in table
    assert page.locator("#member-add-form").count() == 0
    assert page.locator("select.member-role").count() == 0
    screenshot(page, "workspace-members-curator", full_page=True)
    response = page.goto(f"/projects/{project.id}/settings/")
    assert response.status == 403
    assert "admins" in page.locator("main").inner_text()


@pytest.mark.parametrize("section", ["settings", "import", "members"])
def test_annotators_get_403_and_outsiders_404(page, login, project, bob, charlie, section):
    login(page, "bob")
    assert page.goto(f"/projects/{project.id}/{section}/").status == 403
    page.context.clear_cookies()
    login(page, "charlie")
    assert page.goto(f"/projects/{project.id}/{section}/").status == 404


def test_an_admin_switches_adaptive_overlap_on_and_a_bad_range_is_named(
    page, login, screenshot, project, alice
):
    login(page, "alice")
    page.goto(f"/projects/{project.id}/settings/")
    group = page.locator("#adaptive-overlap")
    assert group.locator("legend").inner_text() == "Adaptive overlap"
    assert_fits_every_width(page, "setup-adaptive", screenshot)
    page.check("#id_adaptive_overlap")
    page.fill("#id_min_annotators", "4")
    page.fill("#id_max_annotators", "3")
    page.click("#save-setup")
    error = page.locator('[data-error-for="max_annotators"]')
    error.wait_for()
    assert "must not exceed" in error.inner_text()
    project.refresh_from_db()
    assert not project.adaptive_overlap
    page.fill("#id_max_annotators", "6")
    page.fill("#id_agreement_threshold", "0.8")
    page.click("#save-setup")
    page.wait_for_selector(".flash")
    project.refresh_from_db()
    assert project.adaptive_overlap
    assert (project.min_annotators, project.max_annotators, project.agreement_threshold) == (
        4,
        6,
        0.8,
    )
    assert page.locator("#id_adaptive_overlap").is_checked()
    assert page.errors == []
    assert_fits_every_width(page, "setup-adaptive-saved", screenshot)

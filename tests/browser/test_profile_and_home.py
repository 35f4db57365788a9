"""The profile survey, the progress counts and the missing-answers message, in headless Chromium."""

from __future__ import annotations

import pytest

from annotation.models import AnnotatorProfile, Assignment, AssignmentStatus, Response
from annotation.services import (
    annotation_submit,
    assignment_claim_next,
    assignment_skip,
    profile_update,
)
from annotation.services.projects import PREFERENCE_KEYS
from tests.factories import ItemFactory, ProjectFactory, make_questions
from tests.frontend.test_views import answers_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def save_profile(page) -> None:
    page.click("main button[type=submit]")
    page.wait_for_selector(".flash")


def test_untouched_sliders_are_saved_as_no_answer_and_a_moved_one_as_its_value(
    page, login, screenshot, bob
):
    profile_update(user=bob, consent=True)
    login(page, "bob")
    page.goto("/profile/")
    assert page.locator("output[data-output-for=id_pref_safety]").inner_text() == "No answer"
    assert page.locator("#id_lang_0_proficiency").input_value() == ""
    save_profile(page)
    profile = AnnotatorProfile.objects.get(user=bob)
    assert profile.stated_preferences == dict.fromkeys(PREFERENCE_KEYS)
    assert profile.languages == [] and profile.age_band is None

    page.goto("/profile/")
    page.locator("#id_pref_safety").fill("70")
    assert page.locator("output[data-output-for=id_pref_safety]").inner_text() == "70"
    page.click("#id_pref_factuality")  # a click on the thumb at the midpoint answers 50
    assert page.locator("output[data-output-for=id_pref_factuality]").inner_text() == "50"
    page.fill("#id_lang_0", "Welsh")
    screenshot(page, "profile-one-slider-moved", full_page=True)
    save_profile(page)
    profile.refresh_from_db()
    assert profile.stated_preferences["safety"] == 70
    assert profile.stated_preferences["factuality"] == 50
    answered = {"safety", "factuality"}
    assert all(profile.stated_preferences[k] is None for k in PREFERENCE_KEYS if k not in answered)
    assert profile.languages == [{"language": "Welsh", "proficiency": None}]

    # A saved answer shows as a value; "Clear" takes it back to no answer.
    page.goto("/profile/")
    assert page.locator("output[data-output-for=id_pref_safety]").inner_text() == "70"
    page.click("[data-clear-for=id_pref_safety]")
    assert page.locator("output[data-output-for=id_pref_safety]").inner_text() == "No answer"
    save_profile(page)
    profile.refresh_from_db()
    assert profile.stated_preferences["safety"] is None
    assert not page.errors


def test_home_and_labeling_page_count_the_leased_items_as_still_to_label(page, login, alice, bob):
    project = ProjectFactory(name="Thirty", created_by=alice, overlap=1)
    project.memberships.create(user=bob, role="annotator")
    make_questions(project)
    for _ in range(30):
        ItemFactory(project=project, responses=["One.", "Two.", "Three."])
    for _ in range(3):
        assignment = assignment_claim_next(project=project, annotator=bob)
        annotation_submit(assignment_id=assignment.id, user=bob, answers=answers_for(assignment))
    assignment_skip(assignment=assignment_claim_next(project=project, annotator=bob))

    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".question")
    page.wait_for_load_state("networkidle")  # the page has leased the next item ahead
    assert (
        Assignment.objects.filter(
            annotator=bob, project=project, status=AssignmentStatus.ACTIVE
        ).count()
        == 2
    )
    assert page.locator("#counter").inner_text().startswith("Item 5 of 30 · ")
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.locator("#counter").inner_text() == "Item 5 of 30"  # the rest hides on a phone

    page.goto("/")
    card = page.locator(f".project-card[data-project='{project.id}']")
    assert card.locator("[data-stat=done]").inner_text() == "3"
    assert card.locator("[data-stat=skipped]").inner_text() == "1"
    assert card.locator("[data-stat=remaining]").inner_text() == "26"
    assert not page.errors


def test_the_missing_answers_message_reads_cleanly_and_goes_once_everything_is_answered(
    page, login, screenshot, alice, bob
):
    project = ProjectFactory(name="Prompts", created_by=alice)
    project.memberships.create(user=bob, role="annotator")
    make_questions(
        project,
        [
            {"kind": "pairwise", "name": "preference", "prompt": "Which response is better?"},
            {"kind": "ranking", "name": "ranking", "prompt": "Rank the responses, best first."},
            {
                "kind": "rating",
                "name": "aspects",
                "prompt": "Rate each response.",
                "config": {"aspects": ["helpfulness"], "scale": {"min": 1, "max": 5}},
            },
        ],
    )
    item = ItemFactory(project=project, responses=["One.", "Two."])
    responses = list(Response.objects.filter(item=item).order_by("position"))
    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".question")
    page.wait_for_load_state("networkidle")
    status = page.locator("#status")

    page.click(".kind-pairwise .choice[data-value=a]")
    page.keyboard.press("Control+Enter")
    assert status.inner_text() == (
        "Please answer “Rank the responses, best first” and “Rate each response”."
    )
    screenshot(page, "label-missing-answers")

    page.focus(f".rank-item[data-response='{responses[0].id}']")
    page.keyboard.press("Enter")  # keep this order
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'Please answer “Rate each response”.'"
    )

    page.focus(".rating-row")
    page.keyboard.press("4")
    page.keyboard.press("2")
    page.wait_for_selector("#status", state="hidden")
    assert not page.errors

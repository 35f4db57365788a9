"""The review queue in headless Chromium: an entry of each kind resolved by keyboard."""

from __future__ import annotations

import pytest

from annotation.models import Role
from annotation.pseudonyms import pseudonym
from annotation.services import annotation_submit, assignment_claim_next
from curation.models import Adjudication, ReviewEntry
from tests.browser.test_workspace_webhooks import assert_fits_every_width
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ASPECTS = ("helpfulness", "harmlessness", "honesty")


def _answer(item, prefer_first: bool) -> list[dict]:
    a, b, c = item.responses.order_by("position").values_list("id", flat=True)
    first, second = (a, b) if prefer_first else (b, a)
    return [
        {"question": "preference", "chosen": first, "rejected": second},
        {"question": "ranking", "ranking": [first, second, c]},
        {
            "question": "aspects",
            "ratings": [
                {"response": r, "aspect": x, "value": 4 if r == first else 2}
                for r in (a, b, c)
                for x in ASPECTS
            ],
        },
    ]


@pytest.fixture
def queue(project, items, alice, bob):
    """Four items labelled by two people who disagree, each with an open review entry."""
    project.overlap = 2
    project.save()
    dana = UserFactory(username="dana")
    MembershipFactory(user=dana, project=project, role=Role.ANNOTATOR)
    erin = UserFactory(username="erin")  # a curator: sees pseudonyms only
    MembershipFactory(user=erin, project=project, role=Role.CURATOR)
    for user, prefer_first in ((bob, True), (dana, False)):
        for _ in range(4):
            assignment = assignment_claim_next(project=project, annotator=user)
            annotation_submit(
                assignment_id=assignment.id,
                user=user,
                answers=_answer(assignment.item, prefer_first),
                time_spent_ms=3000,
            )
    labelled = sorted({a.item for a in bob.annotations.all()}, key=lambda i: i.id)
    return [
        ReviewEntry.objects.create(item=item, source="agreement", reason=f"split on {n}")
        for n, item in enumerate(labelled)
    ]


def _open(page, project, entry) -> None:
    page.goto(f"/projects/{project.id}/review/{entry.id}/")
    page.wait_for_selector("body[data-review-ready='1']")


def _resolve(page) -> None:
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#resolution-decision, #resolve-error:not(:empty)")
    assert page.locator("#resolution-decision").count() == 1, page.locator(
        "#resolve-error"
    ).inner_text()


def _label(entry) -> dict[str, list]:
    adjudication = Adjudication.objects.get(entry=entry)
    assert adjudication.decision == "label"
    return {answer["question"]: answer["rows"] for answer in adjudication.label}


@pytest.mark.slow
def test_a_curator_resolves_one_entry_of_each_kind_by_keyboard(
    page, login, screenshot, project, alice, bob, queue
):
    login(page, "erin")
    page.goto(f"/projects/{project.id}/review/")
    assert page.locator("nav.workspace-nav a[aria-current=page]").inner_text() == "Review"
    assert page.locator("#review-table tr[data-entry]").count() == 4
    assert_fits_every_width(page, "review-queue", screenshot)

    # Pairwise: L opens the label editor on the first question; 2 = B better, Shift+3 strength.
    entry = queue[0]
    item = entry.item
    a, b, c = item.responses.order_by("position").values_list("id", flat=True)
    _open(page, project, entry)
    cards = page.locator(".annotation-grid .annotation")
    assert cards.count() == 2
    assert pseudonym(bob.id, str(project.id)) in cards.first.inner_text()
    assert "bob" not in page.locator(".annotation-grid").inner_text()
    assert "3000 ms" in cards.first.inner_text()
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("l")
    page.keyboard.press("2")
    page.keyboard.press("Shift+Digit3")
    assert_fits_every_width(page, "review-entry-pairwise", screenshot)
    _resolve(page)
    assert _label(entry) == {
        "preference": [{"chosen": b, "rejected": a, "tie": False, "strength": 3}]
    }
    assert page.locator("#resolution-label").inner_text() == "preference: B > A (strength 3)"
    assert_fits_every_width(page, "review-entry-resolved", screenshot)
    page.keyboard.press("n")  # the next open entry
    page.wait_for_url(f"**/review/{queue[3].id}/")

    # Ranking: 1 takes annotation 1's answers (bob's), then the ranking is edited.
    entry = queue[1]
    a, b, c = entry.item.responses.order_by("position").values_list("id", flat=True)
    _open(page, project, entry)
    page.keyboard.press("1")
    first = page.locator("fieldset[data-kind=ranking] li").first
    first.focus()
    page.keyboard.press("ArrowDown")  # a, b, c -> b, a, c
    page.keyboard.press("=")  # a tied with b
    for name in ("preference", "aspects"):  # keep only the ranking: the others keep the aggregate
        page.locator(f"fieldset[data-kind] input#q-{_question_id(project, name)}-set").uncheck()
    screenshot(page, "workspace-review-entry-ranking-1400", full_page=True)
    _resolve(page)
    assert _label(entry) == {"ranking": [{"ranking": [[b, a], [c]]}]}

    # Rating: type a value per cell, Tab between cells.
    entry = queue[2]
    a, b, c = entry.item.responses.order_by("position").values_list("id", flat=True)
    _open(page, project, entry)
    page.keyboard.press("l")
    page.locator(f"input.rating-input[data-response='{a}'][data-aspect='helpfulness']").focus()
    for value in ("5", "4", "3"):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    screenshot(page, "workspace-review-entry-rating-1400", full_page=True)
    _resolve(page)
    assert _label(entry) == {
        "aspects": [
            {"response": a, "aspect": "helpfulness", "value": 5.0},
            {"response": a, "aspect": "harmlessness", "value": 4.0},
            {"response": a, "aspect": "honesty", "value": 3.0},
        ]
    }

    # Correction: select in a raw-text box with Shift+arrows, C, type the fix.
    entry = queue[3]
    a, b, c = entry.item.responses.order_by("position").values_list("id", flat=True)
    _open(page, project, entry)
    page.keyboard.press("l")
    page.locator(f"textarea.raw-text[data-response='{a}']").focus()
    page.keyboard.press("Control+Home")
    for _ in range(5):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("c")
    page.keyboard.press("Control+a")
    page.keyboard.type("Fifth")
    page.locator("#resolve-reason").fill("The opening word was wrong")
    assert_fits_every_width(page, "review-entry-correction", screenshot)
    _resolve(page)
    assert _label(entry) == {
        "corrections": [
            {
                "response": a,
                "start": 0,
                "end": 5,
                "original_text": "First",
                "corrected_text": "Fifth",
                "category": "",
                "comment": "",
            }
        ]
    }
    assert Adjudication.objects.get(entry=entry).reason == "The opening word was wrong"
    assert page.errors == []


def _question_id(project, name: str) -> int:
    return project.questions.get(name=name).id


def test_a_bad_label_shows_the_field_and_drop_by_keyboard_excludes(
    page, login, screenshot, project, alice, queue
):
    login(page, "erin")
    entry = queue[0]
    _open(page, project, entry)
    page.keyboard.press("l")
    page.locator(f"input#q-{_question_id(project, 'aspects')}-set").check()  # set, but empty
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#resolve-error:not(:empty)")
    assert page.locator("#resolve-error").inner_text().startswith("label[0].ratings")
    assert not Adjudication.objects.exists()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("d")
    _resolve(page)
    entry.item.refresh_from_db()
    assert entry.item.excluded
    assert page.locator("#resolution-decision").get_attribute("data-decision") == "drop"


def test_an_annotator_reads_gold_accuracy_and_a_message_on_the_home_page(
    page, login, screenshot, project, alice, bob
):
    from annotation.models import AnnotatorMessage
    from tests.factories import ItemFactory

    project.gold_rate = 1.0
    project.save()
    gold = ItemFactory(
        project=project,
        is_gold=True,
        responses=["Right.", "Wrong.", "Other."],
        gold_answer={"answers": [{"question": "preference", "chosen": 0, "rejected": 1}]},
    )
    assignment = assignment_claim_next(project=project, annotator=bob)
    annotation_submit(assignment_id=assignment.id, user=bob, answers=_answer(gold, False))
    AnnotatorMessage.objects.create(
        project=project, item=gold, annotator=bob, sender=alice, body="Response A was right."
    )
    login(page, "bob")
    card = page.locator(f"li.project-card[data-project='{project.id}']")
    assert card.locator(".gold-accuracy").inner_text() == "0%"
    assert card.locator(".gold-result").inner_text().startswith("✗ did not match")
    assert page.locator("#inbox .message-body").inner_text() == "Response A was right."
    assert_fits_every_width(page, "home-feedback", screenshot)
    page.click("#inbox button.mark-read")
    page.wait_for_selector("#inbox li.read")
    assert AnnotatorMessage.objects.get().read_at is not None

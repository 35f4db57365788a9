"""Corrections on rendered Markdown store the raw span the annotator selected; keyboard selection starts at the beginning."""

from __future__ import annotations

import pytest

from annotation.models import CorrectionAnswer, Response, Role
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, make_questions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The emoji makes UTF-16 offsets differ from the code points the server counts in.
TEXT = (
    "👋 Use `s.reverse()` to flip it. Read [the guide](https://example.com/guide) first, "
    "it is **very** short."
)


@pytest.fixture
def correction_project(alice, bob):
    project = ProjectFactory(name="Corrections", created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(
        project,
        [{"kind": "correction", "name": "corrections", "config": {"categories": ["style"]}}],
    )
    return project


def open_page(page, login, project) -> None:
    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".kind-correction")
    page.wait_for_load_state("networkidle")


# Select rendered text from the `start_at`-th character of the text node holding
# `start_text` to the `end_at`-th of the one holding `end_text`, as a mouse drag would.
SELECT = """([rid, startText, startAt, endText, endAt]) => {
    const body = document.querySelector(`.response-body[data-response='${rid}']`);
    const find = (wanted) => {
        const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
        let node;
        while ((node = walker.nextNode())) if (node.data.includes(wanted)) return node;
        throw new Error(`no text node with ${wanted}`);
    };
    const first = find(startText);
    const last = find(endText);
    const range = document.createRange();
    range.setStart(first, first.data.indexOf(startText) + startAt);
    range.setEnd(last, last.data.indexOf(endText) + endAt);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return range.toString();
}"""


def correct(page, response_id: int, selection: tuple, corrected: str) -> dict:
    """Select, press C, read what the form shows, save `corrected`."""
    visible = page.evaluate(SELECT, [response_id, *selection])
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    shown = {
        "visible": visible,
        "original": page.locator(".correction-dialog .original").inner_text(),
        "source": page.locator(".correction-dialog .original-source").inner_text()
        if page.locator(".correction-dialog .original-source-line").is_visible()
        else None,
        "prefilled": page.input_value("#correction-text"),
    }
    saved = page.locator(".correction-entry").count()
    page.fill("#correction-text", corrected)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    page.wait_for_function(f"() => document.querySelectorAll('.correction-entry').length > {saved}")
    return shown


def test_the_next_span_can_be_corrected_in_the_same_task_as_the_last_save(
    page, login, correction_project
):
    """Saving hands the focus back at once: a C pressed before the browser's next
    rendering update used to reach the closed form's text box and do nothing."""
    ItemFactory(project=correction_project, responses=[TEXT, "Other answer."])
    open_page(page, login, correction_project)
    response = Response.objects.get(text=TEXT)
    page.evaluate(SELECT, [response.id, "Use", 0, "Use", 3])
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    page.fill("#correction-text", "Try")
    # Save, select the next span and press C, all in one task, as a fast annotator
    # on a busy machine can.
    after = page.evaluate(
        """([select, rid]) => {
            const key = (target, init) =>
                target.dispatchEvent(new KeyboardEvent("keydown", { bubbles: true, cancelable: true, ...init }));
            key(document.getElementById("correction-text"), { key: "Enter", ctrlKey: true });
            const focusAfterSave = document.activeElement;
            eval(select)([rid, "Read", 0, "Read ", 4]);
            key(document.activeElement, { key: "c" });
            return {
                focusInDialog: Boolean(focusAfterSave.closest("dialog")),
                open: document.querySelector(".correction-dialog").open,
                original: document.querySelector(".correction-dialog .original").textContent,
            };
        }""",
        [SELECT, response.id],
    )
    assert after == {"focusInDialog": False, "open": True, "original": "Read"}
    page.fill("#correction-text", "Study")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.querySelectorAll('.correction-entry').length === 2")
    assert not page.errors


def test_selections_across_code_links_and_emphasis_store_the_raw_span(
    page, login, screenshot, correction_project
):
    ItemFactory(project=correction_project, responses=[TEXT, "Other answer."])
    open_page(page, login, correction_project)
    response = Response.objects.get(text=TEXT)

    # From before an inline code span into the middle of it.
    into_code = correct(page, response.id, ("Use", 0, "s.reverse()", 8), "Use `reversed(s)`")
    assert into_code == {
        "visible": "Use s.revers",
        "original": "Use s.reverse()",
        "source": "Use `s.reverse()`",
        "prefilled": "Use `s.reverse()`",
    }
    # The highlight is one piece around the text and the code span, not split by it.
    marks = page.locator(f".response-body[data-response='{response.id}'] mark")
    assert marks.count() == 1
    assert marks.first.inner_text() == "Use s.reverse()"
    assert marks.first.locator("code").inner_text() == "s.reverse()"

    # From inside a link's text to past it: the whole link comes along, URL included.
    correct(
        page,
        response.id,
        ("the guide", 4, " first", 6),
        "[the manual](https://example.com/m) first",
    )
    # Across the end of strong emphasis.
    correct(page, response.id, ("it is", 3, "very", 3), "is **quite**")
    # Wholly inside the link's text: only those characters, no brackets.
    inside = correct(page, response.id, ("Read", 0, "Read ", 4), "Study")
    assert inside["original"] == "Read" and inside["source"] is None
    screenshot(page.locator(".responses"), "label-corrections-on-markdown")

    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => window.ballot.doneCount > 0")
    rows = list(CorrectionAnswer.objects.filter(response=response).order_by("start"))
    expected = [
        "Use `s.reverse()`",
        "Read",
        "[the guide](https://example.com/guide) first",
        "is **very**",
    ]
    assert [row.original_text for row in rows] == expected
    for row, text in zip(rows, expected, strict=True):
        # Offsets are code points of the raw text (the emoji counts once).
        assert (row.start, row.end) == (TEXT.index(text), TEXT.index(text) + len(text))
        assert TEXT[row.start : row.end] == row.original_text
    assert not page.errors


def test_a_selection_ending_just_before_a_code_span_does_not_take_it(
    page, login, correction_project
):
    ItemFactory(project=correction_project, responses=[TEXT, "Other answer."])
    open_page(page, login, correction_project)
    response = Response.objects.get(text=TEXT)
    # The drag ends at the very start of the code text: nothing of it is selected.
    shown = correct(page, response.id, ("Use", 0, "s.reverse()", 0), "Try")
    assert shown["original"] == "Use" and shown["source"] is None
    assert (
        page.evaluate("window.ballot.current.components[0].corrections()[0].original_text") == "Use"
    )


def test_keyboard_selection_starts_at_the_beginning_and_home_end_move_as_documented(
    page, login, correction_project
):
    text = "First line of the answer.\nSecond line, longer than the first one."
    ItemFactory(project=correction_project, responses=[text, "Other answer."])
    open_page(page, login, correction_project)
    response = Response.objects.get(text=text)
    raw = page.locator(f".raw-box[data-response='{response.id}']")

    def caret() -> list:
        return raw.evaluate(
            "(box) => [document.activeElement === box, box.selectionStart, box.selectionEnd]"
        )

    page.keyboard.press("r")
    raw.wait_for(state="visible")
    assert caret() == [True, 0, 0]
    for _ in range(5):
        page.keyboard.press("Shift+ArrowRight")
    assert caret() == [True, 0, 5]
    page.keyboard.press("End")  # end of the line, not of the text
    assert caret() == [True, 25, 25]
    page.keyboard.press("Shift+Home")  # back to the start of the line, selecting it
    assert caret() == [True, 0, 25]
    page.keyboard.press("Control+End")
    assert caret() == [True, len(text), len(text)]
    page.keyboard.press("Home")
    assert caret() == [True, 26, 26]
    page.keyboard.press("Control+Home")
    assert caret() == [True, 0, 0]
    for _ in range(5):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    assert page.locator(".correction-dialog .original").inner_text() == "First"
    page.fill("#correction-text", "1st")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    # Hiding and showing the boxes again starts at the beginning again.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("r")
    raw.wait_for(state="hidden")
    page.keyboard.press("r")
    raw.wait_for(state="visible")
    page.keyboard.press("Shift+ArrowRight")
    assert caret() == [True, 0, 1]
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => window.ballot.doneCount > 0")
    row = CorrectionAnswer.objects.get(response=response)
    assert (row.start, row.end, row.original_text, row.corrected_text) == (0, 5, "First", "1st")

"""The labeling page fits a phone, a tablet and a desktop window without sideways scrolling."""

from __future__ import annotations

import pytest

from annotation.models import Role
from tests.factories import (
    ALL_KINDS_QUESTIONS,
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    make_questions,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (360, 768, 1400)
LONG_URL = "https://example.com/" + "very-long-path-segment-" * 12 + "end"
LONG_CODE_LINE = "result = " + " + ".join(f"value_{n}" for n in range(60))
UNBROKEN = "x" * 240

RESPONSES = [
    f"See {LONG_URL} for details.\n\n```python\n{LONG_CODE_LINE}\n```\n\nThen call `{UNBROKEN}`.",
    f"**Short** answer with a [link]({LONG_URL}).\n\n1. one\n\n2. two",
    f"مرحبا بالعالم {UNBROKEN} and `inline code` too.",
]


@pytest.fixture
def project_asking(alice, bob):
    """A project asking questions of ``kinds`` about one item full of unbreakable text."""

    def make(*kinds: str):
        project = ProjectFactory(name=f"{' '.join(kinds)} project", created_by=alice)
        MembershipFactory(user=alice, project=project, role=Role.ADMIN)
        MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
        make_questions(project, [spec for spec in ALL_KINDS_QUESTIONS if spec["kind"] in kinds])
        ItemFactory(
            project=project,
            conversation=[{"role": "user", "content": f"Summarise {LONG_URL} please."}],
            responses=RESPONSES,
        )
        return project

    return make


def overflow(page) -> dict:
    return page.evaluate(
        """() => {
            const root = document.documentElement;
            const scrollsInside = [...document.querySelectorAll('.response-body pre')]
                .filter((pre) => pre.scrollWidth > pre.clientWidth && getComputedStyle(pre).overflowX === 'auto').length;
            return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, scrollsInside};
        }"""
    )


KINDS = ("pairwise", "ranking", "rating", "correction")


@pytest.mark.parametrize("kinds", [(kind,) for kind in KINDS] + [KINDS], ids=[*KINDS, "all"])
def test_the_labeling_page_never_scrolls_sideways(page, login, screenshot, project_asking, kinds):
    project = project_asking(*kinds)
    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(f".kind-{kinds[-1]}")
    page.wait_for_load_state("networkidle")
    if "correction" in kinds:
        page.keyboard.press("r")  # the raw-text boxes must fit too
        page.wait_for_selector(".raw-box:visible")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )
        measured = overflow(page)
        assert measured["scrollWidth"] <= measured["clientWidth"], (width, measured)
        # The long code line is still whole: its block scrolls inside itself.
        assert measured["scrollsInside"] >= 1, (width, measured)
        name = kinds[0] if len(kinds) == 1 else "all"
        screenshot(page, f"label-{name}-{width}", full_page=True)
    assert not page.errors


def test_the_dialogs_fit_a_phone(page, login, screenshot, project_asking):
    project = project_asking(*KINDS)
    login(page, "bob")
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".kind-correction")
    page.evaluate(
        """() => {
            const code = document.querySelector('.response-body p code');
            const range = document.createRange();
            range.selectNodeContents(code.closest('p'));
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }"""
    )
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    measured = page.evaluate(
        """() => {
            const dialog = document.querySelector('.correction-dialog').getBoundingClientRect();
            return {left: dialog.left, right: dialog.right, width: document.documentElement.clientWidth};
        }"""
    )
    assert measured["left"] >= 0 and measured["right"] <= measured["width"], measured
    assert overflow(page)["scrollWidth"] <= 360
    screenshot(page, "label-correction-form-360")
    page.keyboard.press("Escape")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("?")
    page.wait_for_selector("#shortcuts[open]")
    help_box = page.evaluate(
        """() => {
            const dialog = document.querySelector('#shortcuts');
            return {scrollWidth: dialog.scrollWidth, clientWidth: dialog.clientWidth};
        }"""
    )
    assert help_box["scrollWidth"] <= help_box["clientWidth"], help_box
    screenshot(page, "shortcuts-help-360")

"""markdown.js, the one renderer of item text, run in Chromium on the inputs that broke it."""

from __future__ import annotations

import pytest

from annotation.models import Response
from annotation.services import annotation_submit, assignment_claim_next
from tests.factories import ItemFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Renders `raw` into a detached <div> and describes the result. It also checks the
# renderer's promise that every text node is a verbatim slice of the raw text at
# the offset it records (what correction spans rely on).
RENDER = """async (raw) => {
    const md = await import('/static/frontend/markdown.js');
    const box = document.createElement('div');
    document.body.append(box);
    const mapper = md.renderMarkdown(box, raw);
    const slices = mapper.textNodes.every(
        (node) => raw.slice(mapper.offsets.get(node), mapper.offsets.get(node) + node.data.length) === node.data
    );
    const html = box.innerHTML;
    const lists = [...box.querySelectorAll('ol, ul')].map((list) => ({
        tag: list.tagName,
        start: list.tagName === 'OL' ? list.start : null,
        items: [...list.children].map((li) => li.firstElementChild ? li.firstElementChild.textContent : li.textContent),
    }));
    const elements = [...box.querySelectorAll('*')].map((el) => el.tagName);
    box.remove();
    return {html, lists, elements, slices, text: box.textContent};
}"""


@pytest.fixture
def render(page):
    page.goto("/login/")

    def run(raw: str) -> dict:
        return page.evaluate(RENDER, raw)

    return run


def test_a_loose_ordered_list_stays_one_list_numbered_from_one(render):
    result = render("1. alpha\n\n2. beta\n\n3. gamma")
    assert result["lists"] == [{"tag": "OL", "start": 1, "items": ["alpha", "beta", "gamma"]}]
    assert result["slices"]


def test_an_ordered_list_keeps_its_first_number(render):
    result = render("Steps left:\n\n5. five\n6. six\n7. seven")
    assert result["lists"] == [{"tag": "OL", "start": 5, "items": ["five", "six", "seven"]}]
    assert result["slices"]


def test_a_loose_list_with_a_code_block_inside_an_item_is_not_split(render):
    result = render("1. Install:\n\n   ```sh\n   pip install x\n   ```\n\n2. Run it\n3. Done")
    assert [(x["tag"], x["start"], x["items"]) for x in result["lists"]] == [
        ("OL", 1, ["Install:", "Run it", "Done"])
    ]
    assert '<pre dir="ltr"><code>pip install x</code></pre>' in result["html"]
    assert result["slices"]


def test_nested_lists_nest_and_the_outer_numbering_goes_on(render):
    result = render("1. fruit\n   - apple\n   - pear\n2. vegetables\n  1. leek")
    outer, inner, second_inner = result["lists"]
    assert (outer["tag"], outer["start"], outer["items"]) == ("OL", 1, ["fruit", "vegetables"])
    assert inner == {"tag": "UL", "start": None, "items": ["apple", "pear"]}
    assert second_inner["items"] == ["leek"]
    assert result["slices"]


def test_a_numbered_line_inside_a_paragraph_is_not_a_list(render):
    result = render("It happened in\n2019. Then it was over.")
    assert result["lists"] == []
    assert result["elements"] == ["P"]


def test_code_fences_show_their_content_verbatim_and_monospace(render):
    result = render(
        "Before\n\n```python\nif a < b:\n    print('<b>x</b>')  # **not bold**\n```\nAfter"
    )
    assert result["elements"] == ["P", "PRE", "CODE", "P"]
    assert (
        "if a &lt; b:\n    print('&lt;b&gt;x&lt;/b&gt;')  # **not bold**</code>" in result["html"]
    )
    assert result["slices"]


def test_inline_code_hides_its_backticks_and_keeps_its_content_literal(render):
    result = render("Use `s.reverse()` or ``a `tick` b`` but not *`this`*.")
    assert result["text"] == "Use s.reverse() or a `tick` b but not this."
    assert "<code>s.reverse()</code>" in result["html"]
    assert "<code>a `tick` b</code>" in result["html"]
    assert "<em><code>this</code></em>" in result["html"]
    assert result["slices"]


def test_links_are_made_only_for_web_and_mail_addresses(render):
    result = render(
        "See [the docs](https://example.com/a_(b)?q=1), <https://example.org/x> and "
        "https://example.net/long_path. Not [this](javascript:alert(1)) nor [that](data:text/html,x)."
    )
    assert result["html"].count("<a ") == 3
    for href, text in [
        ("https://example.com/a_(b)?q=1", "the docs"),
        ("https://example.org/x", "https://example.org/x"),
        ("https://example.net/long_path", "https://example.net/long_path"),
    ]:
        assert (
            f'<a href="{href}" target="_blank" rel="noopener noreferrer nofollow">{text}</a>'
            in result["html"]
        )
    assert "[this](javascript:alert(1))" in result["text"]
    assert "[that](data:text/html,x)" in result["text"]
    assert result["slices"]


def test_emphasis_and_strong_with_stars_and_underscores(render):
    result = render("**bold**, *italic*, __also bold__, _also italic_ and a snake_case_name.")
    assert "<strong>bold</strong>" in result["html"]
    assert "<em>italic</em>" in result["html"]
    assert "<strong>also bold</strong>" in result["html"]
    assert "<em>also italic</em>" in result["html"]
    assert "snake_case_name" in result["text"]
    assert result["elements"].count("EM") == 2
    assert result["slices"]


def test_html_in_the_source_stays_text(render):
    result = render('<img src=x onerror="alert(1)"> **<script>alert(2)</script>**')
    assert result["elements"] == ["P", "STRONG"]
    assert result["text"] == '<img src=x onerror="alert(1)"> <script>alert(2)</script>'


def test_quotes_headings_and_rules(render):
    result = render("# Title\n\n> quoted **line**\n> and more\n\n---\n\nend")
    assert result["elements"] == ["H3", "BLOCKQUOTE", "P", "STRONG", "HR", "P"]
    assert result["text"] == "Titlequoted line\nand moreend"
    assert result["slices"]


RESPONSE = "Steps:\n\n5. five\n\n6. six with `s.reverse()`\n\n👋 Then **stop** here."


def test_the_ranking_rows_render_markdown_like_the_cards(page, login, project, bob):
    ItemFactory(project=project, responses=[RESPONSE, "Plain `code` answer.", "Third."])
    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".rank-item")
    row = page.locator(".rank-item").first
    card = page.locator(".response-body").first
    for rendered in (row.locator(".snippet"), card):
        assert rendered.locator("ol").get_attribute("start") == "5"
        assert rendered.locator("code").first.inner_text() == "s.reverse()"
    assert "`" not in page.locator(".rank-list").inner_text()
    assert "**" not in page.locator(".rank-list").inner_text()
    assert not page.errors


def test_the_curator_item_page_renders_item_text_with_the_same_renderer(
    page, login, screenshot, project, alice, bob
):
    item = ItemFactory(
        project=project,
        conversation=[{"role": "user", "content": "Explain `reverse` <b>now</b>"}],
        responses=[RESPONSE, "Other **answer**."],
    )
    assignment = assignment_claim_next(project=project, annotator=bob)
    assert assignment.item_id == item.id
    first = Response.objects.get(item=item, position=0)
    start = RESPONSE.index("**stop**")
    annotation_submit(
        assignment_id=assignment.id,
        user=bob,
        answers=[
            {"question": "preference", "chosen": first.id, "rejected": first.id + 1},
            {"question": "ranking", "ranking": [[first.id], [first.id + 1]]},
            {
                "question": "aspects",
                "ratings": [
                    {"response": response_id, "aspect": aspect, "value": 3}
                    for response_id in (first.id, first.id + 1)
                    for aspect in ("helpfulness", "harmlessness", "honesty")
                ],
            },
            {
                "question": "corrections",
                "corrections": [
                    {
                        "response": first.id,
                        "start": start,
                        "end": start + len("**stop**"),
                        "original_text": "**stop**",
                        "corrected_text": "**halt**",
                    }
                ],
            },
        ],
    )
    login(page, "alice")
    page.goto(f"/projects/{project.id}/items/{item.id}/")
    page.wait_for_selector(".response .md ol")
    card = page.locator(".response").first
    assert card.locator("ol").get_attribute("start") == "5"
    assert card.locator("li").all_inner_texts() == ["five", "six with s.reverse()"]
    code = card.locator("code")
    assert "mono" in code.evaluate("(el) => getComputedStyle(el).fontFamily").lower()
    assert page.locator(".conversation code").inner_text() == "reverse"
    assert page.locator(".conversation b").count() == 0
    assert "<b>now</b>" in page.locator(".conversation").inner_text()
    # The highlight sits on the corrected span, counted in code points past the emoji.
    mark = page.locator(".corrected mark")
    assert mark.count() == 1
    assert mark.locator("strong").inner_text() == "stop"
    assert mark.inner_text() == "stop1"
    screenshot(page, "curator-item-markdown", full_page=True)
    assert not page.errors

"""The annotator web app, clicked and typed through in headless Chromium, checked against the database."""

from __future__ import annotations

import pytest

from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Assignment,
    AssignmentStatus,
    CorrectionAnswer,
    Item,
    PairwiseAnswer,
    RankingAnswer,
    RatingAnswer,
    Response,
)
from annotation.services import annotation_submit
from tests.factories import ItemFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_label_page(page, project):
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_selector(".question")
    # The page leases the next item ahead in the background; let that finish so
    # the test's timing and the database state do not depend on a race.
    page.wait_for_load_state("networkidle")


def assignment_of(user, project) -> Assignment:
    return Assignment.objects.filter(annotator=user, project=project).order_by("id").first()


def submit_and_wait(page, done_before: int) -> None:
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => window.ballot.doneCount > {done_before}")


def test_sign_in_lists_my_projects_with_progress_and_sign_out(
    page, login, screenshot, project, items, bob
):
    project.instructions = "# Read this\n\nPick the **better** answer."
    project.save()
    page.goto("/")
    page.wait_for_url(lambda url: url.endswith("/login/?next=/"))
    screenshot(page, "login")
    login(page, "bob")
    card = page.locator(f".project-card[data-project='{project.id}']")
    assert card.locator("h2").inner_text() == "Alice's project"
    assert card.locator("[data-stat=remaining]").inner_text() == "5"
    assert card.locator(".prose strong").inner_text() == "better"
    screenshot(page, "home", full_page=True)
    page.click("text=Sign out")
    page.wait_for_url("**/login/")


def test_onboarding_asks_consent_and_profile_then_returns_to_labeling(
    page, login, screenshot, project, items, bob
):
    project.require_profile = True
    project.save()
    login(page, "bob")
    page.goto(f"/projects/{project.id}/label/")
    page.wait_for_url(lambda url: "/onboarding/" in url and "next=" in url)
    screenshot(page, "onboarding-consent")
    page.check("#id_consent")
    page.click("main button[type=submit]")
    page.wait_for_selector("#id_pref_factuality")
    page.select_option("#id_age_band", "25-34")
    page.fill("#id_lang_0", "Arabic")
    page.select_option("#id_lang_0_proficiency", "native")
    page.fill("#id_expertise", "medicine, law")
    slider = page.locator("#id_pref_factuality")
    shown = page.locator("output[data-output-for=id_pref_factuality]")
    slider.fill("85")
    # The page's module script may attach its listener just after the form is on screen: an
    # input event sent before that is lost (seen once in CI), so it is sent again until shown.
    for _ in range(50):
        if shown.inner_text() == "85":
            break
        slider.dispatch_event("input")
        page.wait_for_timeout(100)
    assert shown.inner_text() == "85"
    screenshot(page, "onboarding-profile", full_page=True)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/projects/{project.id}/label/")
    page.wait_for_selector(".question")
    profile = AnnotatorProfile.objects.get(user=bob)
    assert profile.consented_at is not None and profile.completed_at is not None
    assert profile.stated_preferences["factuality"] == 85
    assert profile.languages == [{"language": "Arabic", "proficiency": "native"}]
    assert profile.expertise == ["medicine", "law"]


def test_every_kind_by_keyboard(page, login, screenshot, project, items, bob):
    login(page, "bob")
    open_label_page(page, project)
    assignment = assignment_of(bob, project)
    responses = list(Response.objects.filter(item=assignment.item).order_by("position"))

    page.keyboard.press("2")  # B is better
    page.keyboard.press("Shift+Digit3")  # much better
    page.focus(f".rank-item[data-response='{responses[0].id}']")
    page.keyboard.press("ArrowDown")  # A below B: B, A, C
    page.keyboard.press("ArrowDown")  # B, C, A
    page.focus(f".rank-item[data-response='{responses[2].id}']")
    page.keyboard.press("=")  # C tied with B
    page.focus(".rating-row")
    for digit in "543215432":
        page.keyboard.press(digit)
    page.keyboard.press("r")  # raw-text boxes for keyboard selection
    raw = page.locator(f".raw-box[data-response='{responses[0].id}']")
    raw.focus()
    page.keyboard.press("Control+Home")
    for _ in range(5):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    assert raw.input_value() == responses[0].text  # typing "c" changed nothing
    page.fill("#correction-text", "Primary")
    page.select_option("#correction-category", "style")
    page.fill("#correction-comment", "Wording")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    page.keyboard.press("r")
    for kind in ("pairwise", "ranking", "rating", "correction"):
        screenshot(page.locator(f".kind-{kind}"), f"label-{kind}")
    page.keyboard.press("?")
    page.wait_for_selector("#shortcuts[open]")
    screenshot(page, "shortcuts-help")
    page.keyboard.press("Escape")
    submit_and_wait(page, 0)

    annotation = Annotation.objects.get(assignment=assignment)
    pair = PairwiseAnswer.objects.get(annotation=annotation)
    assert (pair.chosen_id, pair.rejected_id, pair.tie, pair.strength) == (
        responses[1].id,
        responses[0].id,
        False,
        3,
    )
    ranking = RankingAnswer.objects.get(annotation=annotation).ranking
    assert ranking == [[responses[1].id, responses[2].id], [responses[0].id]]
    values = {
        (r.response_id, r.aspect): r.value
        for r in RatingAnswer.objects.filter(annotation=annotation)
    }
    assert values[(responses[0].id, "helpfulness")] == 5
    assert values[(responses[2].id, "honesty")] == 2
    assert len(values) == 9
    correction = CorrectionAnswer.objects.get(annotation=annotation)
    assert (correction.response_id, correction.start, correction.end) == (responses[0].id, 0, 5)
    assert (
        correction.original_text,
        correction.corrected_text,
        correction.category,
        correction.comment,
    ) == (
        "First",
        "Primary",
        "style",
        "Wording",
    )
    assert annotation.time_spent_ms and annotation.time_spent_ms > 0
    # The next item is on screen without a page load.
    assert page.evaluate("window.ballot.current.assignment.id") != assignment.id
    assert not page.errors


def test_every_kind_by_mouse(page, login, screenshot, project, items, bob):
    login(page, "bob")
    open_label_page(page, project)
    assignment = assignment_of(bob, project)
    responses = list(Response.objects.filter(item=assignment.item).order_by("position"))

    page.click(".kind-pairwise .choice[data-value=a]")
    page.click(".kind-pairwise .choice[data-value='2']")
    # Drag C to the top, then tie A with the one above it.
    page.locator(f".rank-item[data-response='{responses[2].id}']").drag_to(
        page.locator(f".rank-item[data-response='{responses[0].id}']"),
        target_position={"x": 20, "y": 3},
    )
    page.click(f".rank-item[data-response='{responses[0].id}'] button[aria-label^='Tie']")
    for row in page.locator(".rating-row").all():
        row.locator(".scale-button[data-value='3']").click()
    # Double-click a word in response B: the correction form opens on the selection.
    body = page.locator(f".response-body[data-response='{responses[1].id}']")
    box = body.locator("p").bounding_box()
    page.mouse.dblclick(box["x"] + 12, box["y"] + box["height"] / 2)
    page.wait_for_selector(".correction-dialog[open]")
    assert page.locator(".correction-dialog .original").inner_text() == "Second"
    page.fill("#correction-text", "2nd")
    page.click(".correction-dialog button[value=save]")
    assert (
        page.locator(f".response-body[data-response='{responses[1].id}'] mark").inner_text()
        == "Second"
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(0, 0)
    screenshot(page, "label-page", full_page=False)
    page.click("#submit-button")
    page.wait_for_function("() => window.ballot.doneCount > 0")

    annotation = Annotation.objects.get(assignment=assignment)
    pair = PairwiseAnswer.objects.get(annotation=annotation)
    assert (pair.chosen_id, pair.rejected_id, pair.strength) == (
        responses[0].id,
        responses[1].id,
        2,
    )
    assert RankingAnswer.objects.get(annotation=annotation).ranking == [
        [responses[2].id, responses[0].id],
        [responses[1].id],
    ]
    assert set(
        RatingAnswer.objects.filter(annotation=annotation).values_list("value", flat=True)
    ) == {3.0}
    correction = CorrectionAnswer.objects.get(annotation=annotation)
    assert (correction.response_id, correction.start, correction.end, correction.original_text) == (
        responses[1].id,
        0,
        6,
        "Second",
    )
    assert not page.errors


def test_html_in_the_data_is_shown_as_text_and_never_runs(page, login, project, bob):
    ItemFactory(
        project=project,
        conversation=[
            {"role": "user", "content": "<script>window.__pwned = 'conversation'</script> hi"}
        ],
        responses=[
            "<img src=x onerror=\"window.__pwned = 'img'; alert(1)\"> **bold**",
            "<script>window.__pwned = 'script'; alert(2)</script>\n```\n<b>code</b>\n```",
        ],
    )
    login(page, "bob")
    open_label_page(page, project)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert page.locator("#app img, #app script, #app b").count() == 0
    first = page.locator(".response-body").nth(0)
    assert "<img src=x onerror=" in first.inner_text()
    assert first.locator("strong").inner_text() == "bold"
    assert "<script>window.__pwned = 'script'" in page.locator(".response-body").nth(1).inner_text()
    assert "<script>" in page.locator(".conversation").inner_text()
    assert not page.errors


def test_correction_offsets_count_code_points_through_markdown_emoji_and_arabic(
    page, login, project, bob
):
    text = "**Hello** 👋🏽 world, مرحبا بالعالم! 🪐 `done`"
    ItemFactory(project=project, responses=[text, "Other answer."])
    login(page, "bob")
    open_label_page(page, project)
    response = Response.objects.get(text=text)
    # Select "بالعالم" in the rendered (markdown) view with a DOM range, as a mouse would.
    page.evaluate(
        """([rid, word]) => {
            const body = document.querySelector(`.response-body[data-response='${rid}']`);
            const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
            let node;
            while ((node = walker.nextNode())) {
                const at = node.data.indexOf(word);
                if (at >= 0) {
                    const range = document.createRange();
                    range.setStart(node, at);
                    range.setEnd(node, at + word.length);
                    getSelection().removeAllRanges();
                    getSelection().addRange(range);
                    return;
                }
            }
        }""",
        [response.id, "بالعالم"],
    )
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    page.fill("#correction-text", "يا عالم")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    # The close handler stores the entry (and clears the selection) a task later.
    page.wait_for_selector(".correction-entry")
    # And the planet emoji via the raw-text box (UTF-16 selection of a surrogate pair).
    # The closed dialog hands focus back to whatever held it before; start from the page.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("r")
    page.wait_for_selector(f".raw-box[data-response='{response.id}']", state="visible")
    page.evaluate(
        """([rid, emoji]) => {
            const box = document.querySelector(`.raw-box[data-response='${rid}']`);
            box.focus();
            const at = box.value.indexOf(emoji);
            box.setSelectionRange(at, at + emoji.length);
        }""",
        [response.id, "🪐"],
    )
    page.keyboard.press("c")
    page.wait_for_selector(".correction-dialog[open]")
    page.fill("#correction-text", "🌍")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".correction-dialog:not([open])", state="attached")
    page.keyboard.press("r")
    page.keyboard.press("1")
    page.focus(".rank-item")
    page.keyboard.press("Enter")
    page.focus(".rating-row")
    for _ in range(6):
        page.keyboard.press("4")
    submit_and_wait(page, 0)

    rows = list(CorrectionAnswer.objects.filter(response=response).order_by("start"))
    word_start = text.index("بالعالم")
    planet = text.index("🪐")
    assert [(r.start, r.end, r.original_text) for r in rows] == [
        (word_start, word_start + len("بالعالم"), "بالعالم"),
        (planet, planet + 1, "🪐"),
    ]
    assert rows[0].corrected_text == "يا عالم"


def test_a_retried_submit_is_stored_once(page, login, project, items, bob):
    login(page, "bob")
    open_label_page(page, project)
    assignment = assignment_of(bob, project)
    keys: list[str] = []

    def lose_the_first_answer(route):
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # the server stores the submission...
            route.abort("connectionreset")  # ...but the browser never hears back
        else:
            route.continue_()

    page.route("**/submit/", lose_the_first_answer)
    page.keyboard.press("1")
    page.focus(".rank-item")
    page.keyboard.press("Enter")
    page.focus(".rating-row")
    for _ in range(9):
        page.keyboard.press("3")
    submit_and_wait(page, 0)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert Annotation.objects.filter(assignment=assignment).count() == 1
    assert Annotation.objects.filter(annotator=bob).count() == 1
    assert "earlier attempt" in page.locator("#status").inner_text()


def test_a_lost_lease_says_so_and_offers_the_next_item(page, login, project, items, bob):
    login(page, "bob")
    open_label_page(page, project)
    assignment = assignment_of(bob, project)
    # The lease ran out and the item's only slot went to someone else.
    Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.EXPIRED)
    Item.objects.filter(pk=assignment.item_id).update(slots_taken=project.overlap)
    page.keyboard.press("1")
    page.focus(".rank-item")
    page.keyboard.press("Enter")
    page.focus(".rating-row")
    for _ in range(9):
        page.keyboard.press("3")
    page.keyboard.press("Control+Enter")
    status = page.locator("#status")
    status.get_by_text("ran out").wait_for()
    assert Annotation.objects.filter(assignment=assignment).count() == 0
    status.get_by_role("button", name="Next item").click()
    page.wait_for_function(
        f"() => window.ballot.current && window.ballot.current.assignment.id !== {assignment.id}"
    )


def test_curator_sees_every_annotation_with_corrections_highlighted(
    page, login, screenshot, project, items, alice, bob
):
    from annotation.services import assignment_claim_next

    assignment = assignment_claim_next(project=project, annotator=bob)
    responses = list(Response.objects.filter(item=assignment.item).order_by("position"))
    annotation_submit(
        assignment_id=assignment.id,
        user=bob,
        time_spent_ms=4200,
        answers=[
            {
                "question": "preference",
                "chosen": responses[1].id,
                "rejected": responses[0].id,
                "strength": 2,
            },
            {
                "question": "ranking",
                "ranking": [[responses[1].id], [responses[0].id, responses[2].id]],
            },
            {
                "question": "aspects",
                "ratings": [
                    {"response": r.id, "aspect": a, "value": 4}
                    for r in responses
                    for a in ("helpfulness", "harmlessness", "honesty")
                ],
            },
            {
                "question": "corrections",
                "corrections": [
                    {
                        "response": responses[0].id,
                        "start": 6,
                        "end": 12,
                        "original_text": "answer",
                        "corrected_text": "reply",
                        "category": "style",
                        "comment": "Shorter.",
                    }
                ],
            },
        ],
    )
    login(page, "alice")
    page.goto(f"/projects/{project.id}/items/{assignment.item_id}/")
    article = page.locator(".annotation")
    assert "bob" in article.locator(".annotation-head").inner_text()
    assert article.locator("mark").inner_text().startswith("answer")
    assert (
        "B preferred over A" in article.inner_text()
        or "B\npreferred over A" in article.inner_text()
    )
    screenshot(page, "curator-item", full_page=True)

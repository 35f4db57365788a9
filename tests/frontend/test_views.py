"""Server-rendered pages and the labeling page's JSON endpoints, without a browser."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape

import pytest
from django.test import Client

from annotation.models import Annotation, AnnotatorProfile, Assignment, AssignmentStatus, Response
from annotation.services import assignment_claim_next, profile_update
from frontend.templatetags.ballot_markdown import markdown_source, markdown_to_safe_html

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


def answers_for(assignment: Assignment) -> list[dict]:
    responses = list(Response.objects.filter(item=assignment.item).order_by("position"))
    return [
        {
            "question": "preference",
            "chosen": responses[0].id,
            "rejected": responses[1].id,
            "tie": False,
            "strength": 1,
        },
        {"question": "ranking", "ranking": [[r.id] for r in responses]},
        {
            "question": "aspects",
            "ratings": [
                {"response": r.id, "aspect": a, "value": 3}
                for r in responses
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    ]


@pytest.mark.parametrize(
    "path", ["/", "/profile/", "/onboarding/", "/projects/1/label/", "/projects/1/items/1/"]
)
def test_pages_require_sign_in(client_for, path):
    response = client_for(None).get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_renders(client_for):
    assert b"Sign in to Ballot" in client_for(None).get("/login/").content


def test_home_lists_my_projects_with_progress(client_for, project, items, bob, charlie):
    page = client_for(bob).get("/").content.decode()
    assert "Alice&#x27;s project" in page or "Alice's project" in page
    assert 'data-stat="remaining">5<' in page
    assert "Alice" not in client_for(charlie).get("/").content.decode()


def test_instructions_markdown_is_sanitised(client_for, project, bob):
    project.instructions = (
        "**Bold** <script>alert('x')</script> <img src=x onerror=alert(1)> [l](javascript:alert(1))"
    )
    project.save()
    page = client_for(bob).get("/").content.decode()
    assert "<strong>Bold</strong>" in page
    assert "<script>alert" not in page and "onerror" not in page and "javascript:" not in page


def test_markdown_renderer_strips_script_and_event_handlers():
    html = markdown_to_safe_html(
        "# T\n\n<script>x()</script><p onclick='y()'>hi</p>\n\n```\n<b>code</b>\n```"
    )
    assert "<script" not in html and "onclick" not in html
    assert "&lt;b&gt;code&lt;/b&gt;" in html


def test_label_page_is_404_for_outsiders(client_for, project, charlie):
    assert client_for(charlie).get(f"/projects/{project.id}/label/").status_code == 404


def test_label_page_embeds_the_first_item(client_for, project, items, bob):
    response = client_for(bob).get(f"/projects/{project.id}/label/")
    assert response.status_code == 200
    boot = json.loads(
        response.content.decode()
        .split('id="ballot-boot" type="application/json">')[1]
        .split("</script>")[0]
    )
    assert boot["assignment"]["item"]["id"] in {item.id for item in items}
    assert [q["kind"] for q in boot["questions"]] == ["pairwise", "ranking", "rating", "correction"]


def test_label_page_sends_annotators_without_a_profile_to_onboarding(
    client_for, project, items, bob
):
    project.require_profile = True
    project.save()
    client = client_for(bob)
    response = client.get(f"/projects/{project.id}/label/")
    assert response.status_code == 302
    assert response["Location"] == f"/onboarding/?next=/projects/{project.id}/label/"
    assert b"Before you start" in client.get(response["Location"]).content
    response = client.post(
        "/onboarding/", {"consent": "on", "next": f"/projects/{project.id}/label/"}
    )
    profile_page = client.get(response["Location"])
    assert b"pref_factuality" in profile_page.content
    data = {
        "next": f"/projects/{project.id}/label/",
        "pref_safety": "90",
        "lang_0": "French",
        "lang_0_proficiency": "fluent",
    }
    response = client.post("/onboarding/", data)
    assert response["Location"] == f"/projects/{project.id}/label/"
    profile = AnnotatorProfile.objects.get(user=bob)
    assert profile.stated_preferences["safety"] == 90 and profile.completed_at is not None
    assert client.get(f"/projects/{project.id}/label/").status_code == 200


def test_onboarding_never_redirects_off_site(client_for, bob):
    profile_update(user=bob, consent=True)
    response = client_for(bob).post("/onboarding/", {"next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_submit_stores_answers_and_returns_the_next_item_and_replays_a_retry(
    client_for, project, items, bob
):
    client = client_for(bob)
    assignment = assignment_claim_next(project=project, annotator=bob)
    key = str(uuid.uuid4())
    url = f"/projects/{project.id}/label/{assignment.id}/submit/"
    body = json.dumps({"answers": answers_for(assignment), "time_spent_ms": 1234})
    first = client.post(
        url, body, content_type="application/json", headers={"Idempotency-Key": key}
    )
    assert first.status_code == 201
    assert first.json()["next"]["id"] != assignment.id
    again = client.post(
        url, body, content_type="application/json", headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.json()["submitted"]["replayed"] is True
    assert again.json()["next"]["id"] == first.json()["next"]["id"]
    assert Annotation.objects.filter(assignment=assignment).count() == 1


def test_submit_reports_validation_errors_and_lost_leases_as_json(client_for, project, items, bob):
    client = client_for(bob)
    assignment = assignment_claim_next(project=project, annotator=bob)
    url = f"/projects/{project.id}/label/{assignment.id}/submit/"
    bad = client.post(url, json.dumps({"answers": []}), content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid"
    Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.EXPIRED)
    type(assignment.item).objects.filter(pk=assignment.item_id).update(slots_taken=project.overlap)
    lost = client.post(
        url, json.dumps({"answers": answers_for(assignment)}), content_type="application/json"
    )
    assert lost.status_code == 410 and lost.json()["error"] == "lease_lost"


def test_json_endpoints_answer_401_to_anonymous_and_404_to_outsiders(
    client_for, project, items, bob, charlie
):
    assignment = assignment_claim_next(project=project, annotator=bob)
    url = f"/projects/{project.id}/label/{assignment.id}/submit/"
    assert client_for(None).post(url, "{}", content_type="application/json").status_code == 401
    assert client_for(charlie).post(url, "{}", content_type="application/json").status_code == 404


def test_leasing_ahead_holds_at_most_one_extra_item(client_for, project, items, bob):
    client = client_for(bob)
    current = assignment_claim_next(project=project, annotator=bob)
    url = f"/projects/{project.id}/label/{current.id}/ahead/"
    first = client.post(url).json()["ahead"]
    second = client.post(url).json()["ahead"]
    assert first == second and first != current.id
    assert Assignment.objects.filter(annotator=bob, status=AssignmentStatus.ACTIVE).count() == 2
    # After submitting, the queue serves the item leased ahead.
    client.post(
        f"/projects/{project.id}/label/{current.id}/submit/",
        json.dumps({"answers": answers_for(current)}),
        content_type="application/json",
    )
    assert assignment_claim_next(project=project, annotator=bob).id == first


def test_skip_returns_the_next_item(client_for, project, items, bob):
    assignment = assignment_claim_next(project=project, annotator=bob)
    data = client_for(bob).post(f"/projects/{project.id}/label/{assignment.id}/skip/").json()
    assert data["skipped"] == assignment.id and data["next"]["id"] != assignment.id


def test_curator_item_page_is_for_staff_only(client_for, project, items, alice, bob, charlie):
    url = f"/projects/{project.id}/items/{items[0].id}/"
    assert client_for(charlie).get(url).status_code == 404
    assert client_for(bob).get(url).status_code == 403
    assert client_for(alice).get(url).status_code == 200
    assert client_for(alice).get(f"/projects/{project.id}/items/999999/").status_code == 404


def test_curator_item_page_escapes_data(client_for, project, alice):
    from tests.factories import ItemFactory

    item = ItemFactory(project=project, responses=["<script>alert(1)</script>", "ok"])
    page = client_for(alice).get(f"/projects/{project.id}/items/{item.id}/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_markdown_source_hands_the_exact_raw_text_and_marks_to_the_page():
    text = 'Line one\r\n<b onclick="x()">two</b> 👋🏽 `code`'
    html = str(markdown_source(text, [(3, 7, 1)]))
    match = re.fullmatch(
        r'<div class="md raw-text" dir="auto" data-markdown="(.*)" data-marks="(.*)">(.*)</div>',
        html,
        re.S,
    )
    assert match, html
    source, marks, fallback = (unescape(part) for part in match.groups())
    # JSON keeps the "\r" that HTML parsing would fold into "\n": offsets stay exact.
    assert json.loads(source) == text and "\r" not in source
    assert json.loads(marks) == [[3, 7, 1]]
    assert fallback == text
    assert "<b" not in html and 'onclick="' not in html


def test_markdown_source_shows_structured_message_content_as_json():
    content = [{"type": "text", "text": "hi"}]
    html = str(markdown_source(content))
    assert json.loads(unescape(re.search(r'data-markdown="([^"]*)"', html).group(1))) == json.dumps(
        content, indent=2
    )

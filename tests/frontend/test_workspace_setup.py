"""Set-up, import and members pages, and the services behind them, without a browser."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Item, Membership, Project, Question, Role
from annotation.pseudonyms import pseudonym
from annotation.services import annotation_submit, assignment_claim_next, membership_add
from annotation.services.projects import project_setup_save, project_update
from tests.factories import MembershipFactory, UserFactory
from tests.frontend.test_views import answers_for

pytestmark = pytest.mark.django_db

PAIRS = Path(__file__).resolve().parents[2] / "examples" / "pairs.jsonl"


@pytest.fixture
def dana(project):
    """A curator of the project."""
    user = UserFactory(username="dana", email="dana@example.org")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def boot_of(html: str, element_id: str) -> dict:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, f"no {element_id} in the page"
    return json.loads(unescape(match.group(1)))


PAIRWISE = {"kind": "pairwise", "name": "preference", "config": {"allow_tie": False}}
RATING = {
    "kind": "rating",
    "name": "quality",
    "prompt": "Rate each response",
    "config": {"aspects": [{"name": "helpfulness"}], "scale": {"min": 1, "max": 7}},
}


# --- services -----------------------------------------------------------------------------------


def test_membership_add_finds_a_user_by_e_mail_when_no_username_matches(project):
    erin = UserFactory(username="erin", email="Erin@Example.org")
    membership = membership_add(project=project, username="erin@example.org", role=Role.CURATOR)
    assert membership.user == erin and membership.role == Role.CURATOR


def test_membership_add_refuses_an_e_mail_shared_by_two_users(project):
    UserFactory(username="twin1", email="twins@example.org")
    UserFactory(username="twin2", email="twins@example.org")
    with pytest.raises(ValidationFailed) as caught:
        membership_add(project=project, username="twins@example.org")
    assert caught.value.field == "username" and "Several users" in caught.value.detail


def test_membership_add_names_the_field_for_an_unknown_e_mail(project):
    with pytest.raises(ValidationFailed) as caught:
        membership_add(project=project, username="nobody@example.org")
    assert caught.value.field == "username"


def test_project_setup_save_creates_a_project_with_its_questions_in_order(alice):
    project = project_setup_save(
        user=alice, fields={"name": "Set up", "overlap": 2}, questions=[PAIRWISE, RATING]
    )
    rows = list(Question.objects.filter(project=project).order_by("position"))
    assert [(q.name, q.kind, q.position) for q in rows] == [
        ("preference", "pairwise", 0),
        ("quality", "rating", 1),
    ]
    assert rows[0].config["allow_tie"] is False
    assert rows[1].config["scale"]["max"] == 7
    assert Membership.objects.get(project=project, user=alice).role == Role.ADMIN


def test_project_setup_save_lists_every_bad_question_by_path_and_writes_nothing(alice):
    bad_rating = {"kind": "rating", "name": "r", "config": {"aspects": []}}
    bad_pairwise = {
        "kind": "pairwise",
        "name": "p",
        "config": {"strength_scale": {"min": 3, "max": 1}},
    }
    with pytest.raises(ValidationFailed) as caught:
        project_setup_save(
            user=alice, fields={"name": "X"}, questions=[PAIRWISE, bad_rating, bad_pairwise]
        )
    fields = [e["field"] for e in caught.value.errors]
    assert fields == ["questions[1].config.aspects", "questions[2].config.strength_scale"]
    assert not Project.objects.filter(name="X").exists()


def test_project_setup_save_refuses_two_questions_with_one_name(alice):
    with pytest.raises(ValidationFailed) as caught:
        project_setup_save(user=alice, fields={"name": "X"}, questions=[PAIRWISE, PAIRWISE])
    assert caught.value.field == "questions[1].name"


def test_project_setup_save_reorders_renames_edits_adds_and_deletes(project):
    stored = {q.name: q for q in Question.objects.filter(project=project)}
    questions = [
        {
            "id": stored["aspects"].id,
            "kind": "rating",
            "name": "preference",
            "config": RATING["config"],
        },
        {"id": stored["preference"].id, "kind": "pairwise", "name": "aspects", "config": {}},
        {"kind": "correction", "name": "fixes", "config": {"categories": ["facts"]}},
    ]
    project_setup_save(user=project.created_by, project=project, fields={}, questions=questions)
    rows = list(Question.objects.filter(project=project).order_by("position"))
    # Names swapped in one save; ranking and corrections were left out and are gone.
    assert [(q.id, q.name, q.position) for q in rows[:2]] == [
        (stored["aspects"].id, "preference", 0),
        (stored["preference"].id, "aspects", 1),
    ]
    assert rows[0].config["aspects"] == [{"name": "helpfulness", "description": ""}]
    assert rows[2].kind == "correction" and rows[2].config["categories"] == ["facts"]
    assert len(rows) == 3


def test_project_setup_save_refuses_a_config_change_to_an_answered_question(project, items, bob):
    assignment = assignment_claim_next(project=project, annotator=bob)
    annotation_submit(assignment_id=assignment.id, user=bob, answers=answers_for(assignment))
    preference = Question.objects.get(project=project, name="preference")
    others = [
        {"id": q.id, "kind": q.kind, "name": q.name, "config": q.config}
        for q in Question.objects.filter(project=project).exclude(pk=preference.id)
    ]
    unchanged = {
        "id": preference.id,
        "kind": "pairwise",
        "name": "preference",
        "config": preference.config,
    }
    # Saving it unchanged (and renaming nothing) is fine; changing its config is not.
    project_setup_save(user=bob, project=project, fields={}, questions=[unchanged, *others])
    changed = {**unchanged, "config": {"allow_tie": False}}
    with pytest.raises(Conflict) as caught:
        project_setup_save(user=bob, project=project, fields={}, questions=[changed, *others])
    assert caught.value.field == "questions[0]"


def test_project_update_bounds_the_quality_threshold(project):
    with pytest.raises(ValidationFailed) as caught:
        project_update(project=project, quality_threshold=1.5)
    assert caught.value.field == "quality_threshold"


# --- set-up pages -------------------------------------------------------------------------------


def test_set_up_is_for_admins_only(project, alice, bob, charlie, dana):
    url = f"/projects/{project.id}/settings/"
    assert client_for(alice).get(url).status_code == 200
    assert client_for(dana).get(url).status_code == 403
    assert client_for(bob).get(url).status_code == 403
    assert client_for(charlie).get(url).status_code == 404


def test_the_home_page_offers_new_project_to_anyone_signed_in(charlie):
    page = client_for(charlie).get("/").content.decode()
    assert 'href="/projects/new/"' in page


def test_creating_a_project_on_the_page_stores_it_with_its_questions(charlie):
    response = client_for(charlie).post(
        "/projects/new/",
        {
            "name": "Charlie's",
            "instructions": "Be *kind*.",
            "overlap": "3",
            "gold_rate": "0.1",
            "lease_seconds": "600",
            "quality_threshold": "0.6",
            "require_profile": "on",
            "questions": json.dumps([PAIRWISE, RATING]),
        },
    )
    project = Project.objects.get(name="Charlie's")
    assert (
        response.status_code == 302 and response["Location"] == f"/projects/{project.id}/settings/"
    )
    assert (project.overlap, project.gold_rate, project.lease_seconds) == (3, 0.1, 600)
    assert project.require_profile and not project.show_gold_feedback
    assert list(project.questions.order_by("position").values_list("name", flat=True)) == [
        "preference",
        "quality",
    ]


def test_a_bad_question_comes_back_with_its_path_and_the_form_keeps_what_was_typed(charlie):
    bad = {"kind": "rating", "name": "r", "config": {"aspects": [], "scale": {"min": 1, "max": 5}}}
    response = client_for(charlie).post(
        "/projects/new/",
        {
            "name": "Kept",
            "overlap": "1",
            "gold_rate": "0",
            "lease_seconds": "600",
            "quality_threshold": "0.5",
            "questions": json.dumps([PAIRWISE, bad]),
        },
    )
    assert response.status_code == 400
    boot = boot_of(response.content.decode(), "setup-boot")
    assert boot["errors"] == [
        {
            "field": "questions[1].config.aspects",
            "detail": "A rating question needs at least one aspect.",
        }
    ]
    assert [q["name"] for q in boot["questions"]] == ["preference", "r"]
    assert not Project.objects.filter(name="Kept").exists()


def test_a_bad_project_field_is_shown_next_to_that_field(project, alice):
    response = client_for(alice).post(
        f"/projects/{project.id}/settings/",
        {
            "name": "x",
            "overlap": "0",
            "gold_rate": "2",
            "lease_seconds": "600",
            "quality_threshold": "0.5",
            "questions": "[]",
        },
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert 'data-error-for="overlap"' in page and 'data-error-for="gold_rate"' in page
    assert project.questions.count() == 4


def test_instructions_preview_uses_the_sanitising_renderer(alice):
    response = client_for(alice).post(
        "/projects/instructions-preview/",
        {"instructions": "**Bold** <script>alert(1)</script> [x](javascript:alert(1))"},
    )
    html = response.json()["html"]
    assert "<strong>Bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html


def test_label_preview_renders_the_labeling_page_with_a_sample_item_and_saves_nothing(
    project, alice, items
):
    response = client_for(alice).post(
        "/projects/label-preview/",
        {
            "questions": json.dumps([RATING, {"kind": "rating", "config": {"aspects": []}}]),
            "name": "Draft",
            "instructions": "Read <b>carefully</b>",
            "project": str(project.id),
        },
    )
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    boot = boot_of(response.content.decode(), "ballot-boot")
    assert boot["preview"] is True and boot["preview_left_out"] == [1]
    assert [q["name"] for q in boot["questions"]] == ["quality"]
    assert boot["assignment"]["item"]["id"] == items[0].id
    assert "label.js" in response.content.decode()
    assert not project.assignments.exists()


# --- import -------------------------------------------------------------------------------------


def upload(content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile("pairs.jsonl", content or PAIRS.read_bytes(), "application/x-ndjson")


def test_import_page_is_for_staff(project, alice, bob, charlie, dana):
    url = f"/projects/{project.id}/import/"
    assert client_for(alice).get(url).status_code == 200
    assert client_for(dana).get(url).status_code == 200
    assert client_for(bob).get(url).status_code == 403
    assert client_for(charlie).get(url).status_code == 404


def test_import_preview_shows_the_format_and_first_items_and_writes_nothing(project, dana):
    response = client_for(dana).post(f"/projects/{project.id}/import/preview/", {"file": upload()})
    data = response.json()
    assert response.status_code == 200
    assert data["format"] == "trl" and data["lines"] == 8 and data["items"] == 8
    first = data["preview"][0]
    assert first["prompt"] == "How do I reverse a string in Python?"
    assert first["responses"][1] == "Python strings have a `.reverse()` method: `s.reverse()`."
    assert first["labels"][0]["answers"] == ["preference: A ≻ B"]
    assert not Item.objects.filter(project=project).exists()


def test_import_preview_lists_bad_lines_by_number(project, alice):
    content = PAIRS.read_bytes() + b'{"prompt": "x"}\nnot json\n'
    data = (
        client_for(alice)
        .post(f"/projects/{project.id}/import/preview/", {"file": upload(content)})
        .json()
    )
    assert [e["line"] for e in data["invalid_lines"]] == [9, 10]
    assert data["invalid_count"] == 2 and data["items"] == 8


def test_import_run_imports_and_reports_the_counts(project, dana):
    client = client_for(dana)
    url = f"/projects/{project.id}/import/run/"
    first = client.post(url, {"file": upload()})
    assert first.status_code == 201 and first.json()["created"] == 8
    again = client.post(url, {"file": upload()}).json()
    assert (again["created"], again["existing"]) == (0, 8)
    assert Item.objects.filter(project=project).count() == 8


def test_import_run_answers_bad_lines_in_the_error_shape_with_line_numbers(project, alice):
    response = client_for(alice).post(
        f"/projects/{project.id}/import/run/", {"file": upload(b'{"prompt": 1}\n')}
    )
    body = response.json()
    assert response.status_code == 400 and body["errors"][0]["line"] == 1
    skipped = client_for(alice).post(
        f"/projects/{project.id}/import/run/",
        {"file": upload(PAIRS.read_bytes() + b"oops\n"), "skip_invalid": "1"},
    )
    assert skipped.json()["skipped_invalid"] == 1 and skipped.json()["created"] == 8


def test_import_endpoints_refuse_annotators_and_outsiders(project, bob, charlie):
    url = f"/projects/{project.id}/import/run/"
    assert client_for(bob).post(url, {"file": upload()}).status_code == 403
    assert client_for(charlie).post(url, {"file": upload()}).status_code == 404
    assert not Item.objects.filter(project=project).exists()


# --- members ------------------------------------------------------------------------------------


def test_admin_adds_a_member_by_e_mail_and_changes_the_role(project, alice):
    erin = UserFactory(username="erin", email="erin@example.org")
    client = client_for(alice)
    url = f"/projects/{project.id}/members/"
    response = client.post(url, {"action": "add", "user": "erin@example.org", "role": "annotator"})
    assert response.status_code == 302
    membership = Membership.objects.get(project=project, user=erin)
    client.post(url, {"action": "role", "membership": membership.id, "role": "curator"})
    membership.refresh_from_db()
    assert membership.role == Role.CURATOR


def test_an_unknown_user_is_named_next_to_the_field(project, alice):
    response = client_for(alice).post(
        f"/projects/{project.id}/members/", {"action": "add", "user": "ghost", "role": "annotator"}
    )
    assert response.status_code == 400
    assert 'data-error-for="user"' in response.content.decode()


def test_the_last_admin_cannot_remove_themselves(project, alice):
    membership = Membership.objects.get(project=project, user=alice)
    response = client_for(alice).post(
        f"/projects/{project.id}/members/", {"action": "remove", "membership": membership.id}
    )
    assert response.status_code == 409
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_curators_read_members_as_pseudonyms_and_cannot_change_them(project, alice, bob, dana):
    client = client_for(dana)
    url = f"/projects/{project.id}/members/"
    page = client.get(url).content.decode()
    assert pseudonym(bob.id, str(project.id)) in page
    assert ">bob<" not in page and "alice" not in page
    assert "dana" in page  # their own name
    bob_membership = Membership.objects.get(project=project, user=bob)
    response = client.post(
        url, {"action": "role", "membership": bob_membership.id, "role": "admin"}
    )
    assert response.status_code == 403
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.ANNOTATOR


def test_members_page_refuses_annotators_and_outsiders(project, bob, charlie):
    url = f"/projects/{project.id}/members/"
    assert client_for(bob).get(url).status_code == 403
    assert client_for(charlie).get(url).status_code == 404


def test_label_preview_shows_an_outsider_the_built_in_sample_not_the_projects_items(
    project, charlie, items
):
    response = client_for(charlie).post(
        "/projects/label-preview/",
        {"questions": json.dumps([PAIRWISE]), "project": str(project.id)},
    )
    item = boot_of(response.content.decode(), "ballot-boot")["assignment"]["item"]
    assert item["external_id"] == "sample"
    assert all(i.external_id not in response.content.decode() for i in items)


def test_an_admin_who_leaves_a_project_with_another_admin_goes_home(project, alice):
    MembershipFactory(user=UserFactory(username="frank"), project=project, role=Role.ADMIN)
    own = Membership.objects.get(project=project, user=alice)
    response = client_for(alice).post(
        f"/projects/{project.id}/members/", {"action": "remove", "membership": own.id}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(pk=own.pk).exists()


def test_an_unknown_members_action_or_membership_changes_nothing(project, alice, bob):
    client = client_for(alice)
    url = f"/projects/{project.id}/members/"
    assert client.post(url, {"action": "promote", "membership": "1"}).status_code == 400
    assert (
        client.post(url, {"action": "role", "membership": "999999", "role": "admin"}).status_code
        == 404
    )
    assert Membership.objects.get(project=project, user=bob).role == Role.ANNOTATOR


# --- adaptive overlap ---------------------------------------------------------------------------

SETTINGS_FORM = {
    "name": "Adaptive",
    "overlap": "1",
    "gold_rate": "0",
    "lease_seconds": "600",
    "quality_threshold": "0.5",
    "questions": "[]",
}


def test_the_settings_page_stores_adaptive_overlap_and_reopens_items_to_the_minimum(project, alice):
    item = Item.objects.create(project=project, external_id="done", slots_taken=1, is_full=True)
    project.questions.all().delete()
    response = client_for(alice).post(
        f"/projects/{project.id}/settings/",
        {
            **SETTINGS_FORM,
            "adaptive_overlap": "on",
            "min_annotators": "2",
            "max_annotators": "4",
            "agreement_threshold": "0.8",
            "confidence_threshold": "0.9",
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.adaptive_overlap, project.min_annotators, project.max_annotators) == (
        True,
        2,
        4,
    )
    assert (project.agreement_threshold, project.confidence_threshold) == (0.8, 0.9)
    item.refresh_from_db()
    assert not item.is_full
    page = client_for(alice).get(f"/projects/{project.id}/settings/").content.decode()
    assert 'id="adaptive-overlap"' in page and 'name="max_annotators" value="4"' in page


def test_a_minimum_above_the_maximum_is_shown_next_to_the_maximum(project, alice):
    response = client_for(alice).post(
        f"/projects/{project.id}/settings/",
        {**SETTINGS_FORM, "adaptive_overlap": "on", "min_annotators": "5", "max_annotators": "3"},
    )
    assert response.status_code == 400
    assert 'data-error-for="max_annotators"' in response.content.decode()
    project.refresh_from_db()
    assert not project.adaptive_overlap and project.max_annotators == 5


def test_a_form_without_the_adaptive_numbers_keeps_the_stored_ones(project, alice):
    project_update(project=project, min_annotators=2, max_annotators=7, confidence_threshold=0.6)
    response = client_for(alice).post(f"/projects/{project.id}/settings/", SETTINGS_FORM)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.min_annotators, project.max_annotators) == (2, 7)
    assert project.confidence_threshold == 0.6

"""The profile survey: every question is optional, and "not answered" stays distinguishable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from annotation.models import AnnotatorProfile, Membership, Role
from annotation.services import annotation_submit, assignment_claim_next, profile_update
from annotation.services.projects import PREFERENCE_KEYS
from curation.models import DatasetVersion, JobKind, JobStatus
from curation.services import job_create
from curation.storage import absolute
from tests.frontend.test_views import answers_for

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def untouched_survey(**answers: str) -> dict[str, str]:
    """What the rendered form posts when nothing but ``answers`` was touched.

    A range input always submits its midpoint (50); the hidden marker says it was never moved.
    """
    data = {"next": "/profile/"}
    for key in PREFERENCE_KEYS:
        data[f"pref_{key}"] = "50"
        data[f"pref_{key}_unanswered"] = "1"
    for row in range(3):
        data[f"lang_{row}"] = ""
        data[f"lang_{row}_proficiency"] = ""
    data.update(answers)
    return data


def test_untouched_sliders_and_blank_questions_are_stored_as_unanswered(bob):
    profile_update(user=bob, consent=True)
    client = signed_in(bob)
    response = client.post(
        "/profile/", untouched_survey(pref_safety="90", pref_safety_unanswered="")
    )
    assert response.status_code == 302
    profile = AnnotatorProfile.objects.get(user=bob)
    assert profile.stated_preferences == {
        key: (90 if key == "safety" else None) for key in PREFERENCE_KEYS
    }
    assert profile.age_band is None and profile.education is None and profile.gender is None
    assert profile.languages == []


def test_an_empty_language_row_has_no_preset_proficiency(bob):
    profile_update(user=bob, consent=True)
    client = signed_in(bob)
    page = client.get("/profile/").content.decode()
    select = page.split('name="lang_0_proficiency"')[1].split("</select>")[0]
    assert '<option value="" selected>' in select
    assert "selected" not in select.replace('<option value="" selected>', "")
    client.post("/profile/", untouched_survey(lang_0="French"))
    profile = AnnotatorProfile.objects.get(user=bob)
    assert profile.languages == [{"language": "French", "proficiency": None}]


def test_the_profile_page_shows_unanswered_sliders_as_no_answer_and_answers_as_values(bob):
    profile_update(user=bob, consent=True, stated_preferences={"safety": 20})
    page = signed_in(bob).get("/profile/").content.decode()
    safety = page.split('data-pref="pref_safety"')[1].split("</output>")[0]
    factuality = page.split('data-pref="pref_factuality"')[1].split("</output>")[0]
    assert safety.endswith(">20") and 'name="pref_safety_unanswered"' in safety
    assert 'value="1"' not in safety
    assert factuality.endswith(">No answer") and 'value="1"' in factuality


def test_the_api_accepts_null_for_no_answer_and_rejects_other_non_numbers(api, bob):
    client = api(bob)
    response = client.put(
        "/api/v1/profile/",
        {"stated_preferences": {"safety": None, "fluency": 70}, "age_band": None, "gender": ""},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["stated_preferences"]["safety"] is None
    assert body["stated_preferences"]["fluency"] == 70
    assert body["stated_preferences"]["values"] is None
    assert body["age_band"] is None and body["gender"] is None
    bad = client.put("/api/v1/profile/", {"stated_preferences": {"safety": "high"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "stated_preferences.safety"


def test_curators_see_unanswered_answers_as_null_in_the_profiles_api(api, project, bob, charlie):
    Membership.objects.create(user=charlie, project=project, role=Role.CURATOR)
    profile_update(
        user=bob,
        consent=True,
        stated_preferences={"factuality": 80, "safety": None},
        languages=[{"language": "French"}],
        age_band="",
    )
    response = api(charlie).get(f"/api/v1/projects/{project.id}/profiles/")
    assert response.status_code == 200
    (row,) = [r for r in response.json()["results"] if r["languages"]]
    assert row["stated_preferences"]["factuality"] == 80
    assert row["stated_preferences"]["safety"] is None
    assert row["languages"] == [{"language": "French", "proficiency": None}]
    assert row["age_band"] is None


def test_exported_profile_columns_carry_null_for_unanswered_questions(
    project, items, alice, bob, django_capture_on_commit_callbacks
):
    profile_update(user=bob, consent=True, stated_preferences={"fluency": 30}, age_band="")
    for _ in range(2):
        assignment = assignment_claim_next(project=project, annotator=bob)
        annotation_submit(assignment_id=assignment.id, user=bob, answers=answers_for(assignment))
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(
            project=project,
            kind=JobKind.EXPORT,
            params={
                "format": "trl_preference",
                "outputs": ["jsonl"],
                "test_fraction": 0,
                "include_annotators": True,
                "profile_fields": ["age_band", "stated_preferences"],
            },
            user=alice,
        )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = DatasetVersion.objects.get(job=job)
    lines = (Path(absolute(version.path)) / "jsonl" / "train.jsonl").read_text().splitlines()
    assert lines
    for line in lines:
        (profile,) = json.loads(json.loads(line)["annotator_profiles"]).values()
        assert profile["age_band"] is None
        assert profile["stated_preferences"]["fluency"] == 30
        assert profile["stated_preferences"]["safety"] is None

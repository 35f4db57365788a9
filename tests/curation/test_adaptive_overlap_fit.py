"""A reliability fit on an adaptive-overlap project asks one more vote of its low-confidence items."""

from __future__ import annotations

import json

import pytest

from annotation.models import Item, Role
from annotation.services import items_import, project_update, question_create
from curation.models import ItemPosterior, Job, JobKind, JobStatus
from curation.services import job_create
from tests.factories import MembershipFactory, ProjectFactory

THRESHOLD = 0.9


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


def _vote(label: int) -> dict:
    if label == 2:
        return {"question": "preference", "chosen": 0, "rejected": 1, "tie": True}
    return {"question": "preference", "chosen": label, "rejected": 1 - label}


@pytest.fixture
def voted(alice):
    """40 items with three imported votes each: 28 unanimous, 12 split three ways."""
    project = ProjectFactory(created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference", config={})
    project_update(
        project=project,
        adaptive_overlap=True,
        min_annotators=3,
        max_annotators=5,
        confidence_threshold=THRESHOLD,
    )
    rows = []
    for index in range(40):
        who = [f"rater{(index + k) % 6}" for k in range(3)]
        labels = [0, 0, 0] if index < 28 else [0, 1, 2]
        rows.append(
            {
                "external_id": f"fit-{index}",
                "prompt": f"Prompt {index}",
                "responses": [f"first {index}", f"second {index}"],
                "annotations": [
                    {"annotator": name, "answers": [_vote(label)]}
                    for name, label in zip(who, labels, strict=True)
                ],
            }
        )
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")
    return project


def _fit(project, user) -> Job:
    job = job_create(project=project, kind=JobKind.RELIABILITY, params={}, user=user)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def test_items_under_the_confidence_threshold_ask_for_one_more_vote(voted, alice):
    job = _fit(voted, alice)
    low = set(
        ItemPosterior.objects.filter(job=job, confidence__lt=THRESHOLD).values_list(
            "item_id", flat=True
        )
    )
    assert 0 < len(low) < 40
    extra = dict(Item.objects.filter(project=voted).values_list("id", "overlap_extra"))
    assert {item_id for item_id, n in extra.items() if n} == low
    # One vote beyond the three in, not more.
    assert {extra[item_id] for item_id in low} == {1}
    assert job.result["items_asking_another_vote"] == len(low)
    # A second fit over the same votes asks nothing more.
    again = _fit(voted, alice)
    assert again.result["items_asking_another_vote"] == 0
    assert dict(Item.objects.filter(project=voted).values_list("id", "overlap_extra")) == extra


def test_without_a_confidence_threshold_a_fit_reopens_nothing(voted, alice):
    project_update(project=voted, confidence_threshold=None)
    job = _fit(voted, alice)
    assert job.result["items_asking_another_vote"] == 0
    assert not Item.objects.filter(project=voted, overlap_extra__gt=0).exists()

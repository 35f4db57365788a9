"""The review queue: its feeds, adjudication, the ``adjudicated`` export policy and the API."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from annotation.models import AnnotatorMessage, Item, Project, Question, Role
from annotation.services import annotation_submit, assignment_claim_next, items_import
from curation.jobs.kinds import export
from curation.jobs.kinds.suspects import SuspectParams
from curation.models import (
    Adjudication,
    Job,
    JobKind,
    JobStatus,
    PairScore,
    ReviewEntry,
    ReviewSource,
)
from curation.review.services import (
    review_entries_from_agreement,
    review_entries_from_job,
    review_entry_resolve,
)
from tests.api_mixins import ScopedEndpointTests
from tests.factories import ItemFactory, MembershipFactory


@pytest.fixture
def pairwise_project(alice):
    """A project asking one pairwise question, three annotators and a curator."""
    from annotation.services import question_create

    project = Project.objects.create(name="Review", overlap=3, created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference", config={"allow_tie": True})
    return project


def _import(project: Project, n: int, votes: list[list[int]]) -> list[Item]:
    """``n`` items, each with the annotators' votes (0: A better, 1: B better), by import."""
    lines = []
    for index in range(n):
        lines.append(
            json.dumps(
                {
                    "external_id": f"p-{index}",
                    "prompt": f"Question number {index}?",
                    "responses": [f"Answer A {index}", f"Answer B {index}"],
                    "annotations": [
                        {
                            "annotator": f"rater{k}",
                            "answers": [{"question": "preference", "chosen": v, "rejected": 1 - v}],
                        }
                        for k, v in enumerate(votes[index])
                    ],
                }
            )
        )
    items_import(project=project, lines=lines, fmt="native")
    return list(Item.objects.filter(project=project).order_by("id"))


def _export_rows(project: Project, aggregation: str) -> list[dict]:
    params = export.ExportParams.validate(
        {"format": "trl_preference", "aggregation": aggregation, "outputs": ["jsonl"]},
        kind="export",
        project=project,
    )
    job = Job.objects.create(project=project, kind=JobKind.EXPORT, params=params)
    records = export._records(project, export.ExportParams.from_job(job), lambda f, m: None)[0]
    return sorted(
        ((r.item_id, r.chosen_text, r.rejected_text, r.tie, r.agreement, r.votes) for r in records),
    )


def test_adjudicated_labels_appear_with_the_adjudicated_policy_and_nowhere_else(
    pairwise_project, alice
):
    items = _import(pairwise_project, 4, [[0, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0]])
    policies = ("majority", "unanimous", "all", "adjudicated")
    before = {p: _export_rows(pairwise_project, p) for p in policies}
    assert before["adjudicated"] == before["majority"]
    question = Question.objects.get(project=pairwise_project)
    a0, b0 = items[0].responses.order_by("position").values_list("id", flat=True)
    # Item 0: the majority said A; the curator says B. Item 1: accepted. Item 3: dropped.
    entries = [
        ReviewEntry.objects.create(item=item, source=ReviewSource.EXPLORER) for item in items
    ]
    review_entry_resolve(
        entry=entries[0],
        user=alice,
        decision="label",
        label=[{"question": question.name, "chosen": b0, "rejected": a0}],
        reason="B answers the question",
    )
    review_entry_resolve(entry=entries[1], user=alice, decision="accept")
    # Before dropping: the non-adjudicated policies must not have moved.
    for policy in ("majority", "unanimous", "all"):
        assert _export_rows(pairwise_project, policy) == before[policy], policy
    adjudicated = _export_rows(pairwise_project, "adjudicated")
    first = [row for row in adjudicated if row[0] == items[0].id]
    assert first == [(items[0].id, "Answer B 0", "Answer A 0", False, 1.0, 1)]
    # Everything else is the majority's.
    assert [r for r in adjudicated if r[0] != items[0].id] == [
        r for r in before["majority"] if r[0] != items[0].id
    ]
    review_entry_resolve(entry=entries[3], user=alice, decision="drop")
    assert Item.objects.get(pk=items[3].id).excluded
    assert items[3].id not in {row[0] for row in _export_rows(pairwise_project, "adjudicated")}
    # The annotations themselves were never touched.
    assert Adjudication.objects.count() == 3
    assert items[0].annotations.count() == 3


def test_resolving_twice_is_safe_and_a_different_answer_conflicts(pairwise_project, alice, api):
    (item,) = _import(pairwise_project, 1, [[0, 1, 0]])
    entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
    url = f"/api/v1/projects/{pairwise_project.id}/review/{entry.id}/resolve/"
    client = api(alice)
    first = client.post(url, {"decision": "accept", "reason": "fine"}, format="json")
    assert first.status_code == 201, first.content
    again = client.post(url, {"decision": "accept", "reason": "fine"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = client.post(url, {"decision": "drop"}, format="json")
    assert other.status_code == 409 and other.json()["field"] == "decision"
    assert Adjudication.objects.filter(entry=entry).count() == 1
    assert not Item.objects.get(pk=item.id).excluded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        (
            {"decision": "label", "label": [{"question": "preference", "chosen": 99999}]},
            "label[0].chosen",
        ),
        ({"decision": "label", "label": []}, "label"),
        ({"decision": "label", "label": [{"question": "nope"}]}, "label[0].question"),
        ({"decision": "accept", "label": []}, "label"),
        ({"decision": "more_votes", "votes": 0}, "votes"),
        ({"decision": "drop", "votes": 2}, "votes"),
    ],
)
def test_a_bad_resolution_is_a_400_naming_the_field(pairwise_project, alice, api, body, field):
    (item,) = _import(pairwise_project, 1, [[0, 1, 0]])
    entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
    response = api(alice).post(
        f"/api/v1/projects/{pairwise_project.id}/review/{entry.id}/resolve/", body, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert ReviewEntry.objects.get(pk=entry.id).resolved_at is None


def test_agreement_under_a_threshold_feeds_the_queue_once(pairwise_project, alice, api):
    items = _import(pairwise_project, 3, [[0, 1, 0], [0, 0, 0], [1, 1, 0]])
    assert [round(i.agreement, 3) for i in items] == [0.667, 1.0, 0.667]
    url = f"/api/v1/projects/{pairwise_project.id}/review/from-agreement/"
    response = api(alice).post(url, {"threshold": 0.8}, format="json")
    assert response.status_code == 201 and response.json() == {"added": 2}
    assert api(alice).post(url, {"threshold": 0.8}, format="json").json() == {"added": 0}
    entries = ReviewEntry.objects.filter(source=ReviewSource.AGREEMENT)
    assert {e.item_id for e in entries} == {items[0].id, items[2].id}
    assert entries.first().scores == {"agreement": pytest.approx(2 / 3), "threshold": 0.8}
    bad = api(alice).post(url, {"threshold": 1.5}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "threshold"
    assert review_entries_from_agreement(project=pairwise_project, threshold=0.5) == 0


def test_one_open_entry_per_item_and_source_is_a_database_constraint(pairwise_project):
    (item,) = _import(pairwise_project, 1, [[0, 1, 0]])
    ReviewEntry.objects.create(item=item, source=ReviewSource.GOLD)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewEntry.objects.create(item=item, source=ReviewSource.GOLD)
    # Another source, or once the first is resolved, is fine.
    ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)


def test_a_suspects_jobs_flagged_pairs_become_entries_with_their_scores(pairwise_project, alice):
    items = _import(pairwise_project, 3, [[0, 0, 0], [1, 1, 1], [0, 0, 1]])
    job = Job.objects.create(
        project=pairwise_project, kind=JobKind.SUSPECTS, status=JobStatus.SUCCEEDED
    )
    for n, item in enumerate(items):
        a, b = item.responses.order_by("position")
        PairScore.objects.create(
            job=job,
            item=item,
            pair_key=f"k{n}",
            kind="pairwise",
            question="preference",
            chosen_response=a,
            rejected_response=b,
            margin=-1.0,
            prob_chosen=0.1,
            quality=0,
            diversity=0,
            importance=0,
            suspect=n != 1,
            suspect_confidence=0.9 - n / 10,
        )
    assert review_entries_from_job(job=job, user=alice) == 2
    assert review_entries_from_job(job=job, user=alice) == 0
    entries = {e.item_id: e for e in ReviewEntry.objects.filter(source=ReviewSource.SUSPECTS)}
    assert set(entries) == {items[0].id, items[2].id}
    first = entries[items[0].id]
    assert first.job_id == job.id and first.created_by_id == alice.id
    assert first.scores["pairs"][0]["suspect_confidence"] == pytest.approx(0.9)
    assert first.scores["pairs"][0]["prob_chosen"] == pytest.approx(0.1)
    running = Job.objects.create(project=pairwise_project, kind=JobKind.SUSPECTS)
    from annotation.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as error:
        review_entries_from_job(job=running)
    assert error.value.field == "job"


def test_the_suspects_job_declares_the_review_option():
    names = [name for name, _ in SuspectParams.specs()]
    assert "review" in names and SuspectParams().review is False


@pytest.mark.slow
def test_a_suspects_job_with_review_queues_its_flagged_items(project, alice, api, tiny_embeddings):
    from tests.datasets import dataset

    lines = (
        (dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl").read_text().splitlines()[:151]
    )
    items_import(project=project, lines=lines, fmt="hh", skip_invalid=True)
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {
            "kind": "suspects",
            "params": {"folds": 3, "epochs": 6, "suspect_threshold": 0.55, "review": True},
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    flagged = set(PairScore.objects.filter(job=job, suspect=True).values_list("item_id", flat=True))
    assert flagged, "the job flagged nothing: lower the threshold"
    queued = set(
        ReviewEntry.objects.filter(source=ReviewSource.SUSPECTS, job=job).values_list(
            "item_id", flat=True
        )
    )
    assert queued == flagged
    assert job.result["review_entries"] == len(flagged)


def test_a_failed_gold_answer_queues_the_item_on_submit(
    project, alice, bob, django_capture_on_commit_callbacks
):
    gold = ItemFactory(
        project=project,
        is_gold=True,
        responses=["Right.", "Wrong."],
        gold_answer={"answers": [{"question": "preference", "chosen": 0, "rejected": 1}]},
    )
    project.gold_rate = 1.0
    project.save()
    assignment = assignment_claim_next(project=project, annotator=bob)
    assert assignment.item_id == gold.id
    right, wrong = gold.responses.order_by("position").values_list("id", flat=True)
    answers = [
        {"question": "preference", "chosen": wrong, "rejected": right},
        {"question": "ranking", "ranking": [wrong, right]},
        {
            "question": "aspects",
            "ratings": [
                {"response": r, "aspect": a, "value": 3}
                for r in (right, wrong)
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    ]
    with django_capture_on_commit_callbacks(execute=True):
        annotation_submit(assignment_id=assignment.id, user=bob, answers=answers)
    entry = ReviewEntry.objects.get(item=gold)
    assert entry.source == ReviewSource.GOLD
    failure = entry.scores["failures"][0]
    assert failure["questions"] == ["preference"]
    assert failure["annotator"].startswith("ann-") and "bob" not in json.dumps(entry.scores)


def test_a_matching_gold_answer_queues_nothing(
    project, alice, bob, django_capture_on_commit_callbacks
):
    gold = ItemFactory(
        project=project,
        is_gold=True,
        responses=["Right.", "Wrong."],
        gold_answer={"answers": [{"question": "preference", "chosen": 0, "rejected": 1}]},
    )
    project.gold_rate = 1.0
    project.save()
    assignment = assignment_claim_next(project=project, annotator=bob)
    right, wrong = gold.responses.order_by("position").values_list("id", flat=True)
    answers = [
        {"question": "preference", "chosen": right, "rejected": wrong},
        {"question": "ranking", "ranking": [right, wrong]},
        {
            "question": "aspects",
            "ratings": [
                {"response": r, "aspect": a, "value": 3}
                for r in (right, wrong)
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    ]
    with django_capture_on_commit_callbacks(execute=True):
        annotation_submit(assignment_id=assignment.id, user=bob, answers=answers)
    assert not ReviewEntry.objects.exists()


def test_a_curator_messages_an_annotator_by_pseudonym_after_resolving(pairwise_project, alice, api):
    (item,) = _import(pairwise_project, 1, [[0, 1, 0]])
    entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
    client = api(alice)
    url = f"/api/v1/projects/{pairwise_project.id}/review/{entry.id}/messages/"
    from annotation.pseudonyms import pseudonym

    rater = get_user_model().objects.get(username="imported-rater1")
    name = pseudonym(rater.id, str(pairwise_project.id))
    early = client.post(url, {"annotator": name, "body": "Look again"}, format="json")
    assert early.status_code == 400 and early.json()["field"] == "entry"
    client.post(
        f"/api/v1/projects/{pairwise_project.id}/review/{entry.id}/resolve/",
        {"decision": "accept"},
        format="json",
    )
    unknown = client.post(url, {"annotator": "rater1", "body": "Look again"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "annotator"
    sent = client.post(url, {"annotator": name, "body": "B was better here."}, format="json")
    assert sent.status_code == 201, sent.content
    message = AnnotatorMessage.objects.get()
    assert (message.annotator_id, message.item_id, message.body) == (
        rater.id,
        item.id,
        "B was better here.",
    )


def test_the_queue_filters_by_source_and_state(pairwise_project, alice, api):
    items = _import(pairwise_project, 3, [[0, 1, 0], [0, 0, 0], [1, 1, 0]])
    ReviewEntry.objects.create(item=items[0], source=ReviewSource.GOLD)
    done = ReviewEntry.objects.create(item=items[1], source=ReviewSource.AGREEMENT)
    ReviewEntry.objects.create(item=items[2], source=ReviewSource.AGREEMENT)
    review_entry_resolve(entry=done, user=alice, decision="accept")
    base = f"/api/v1/projects/{pairwise_project.id}/review/"
    client = api(alice)

    def ids(query: str) -> set[int]:
        response = client.get(base + query)
        assert response.status_code == 200, response.content
        return {row["item"] for row in response.json()["results"]}

    assert ids("") == {items[0].id, items[2].id}
    assert ids("?source=agreement") == {items[2].id}
    assert ids("?state=resolved") == {items[1].id}
    assert ids("?state=all&source=agreement") == {items[1].id, items[2].id}
    bad = client.get(base + "?source=nope")
    assert bad.status_code == 400 and bad.json()["field"] == "source"


class TestReviewListPermissions(ScopedEndpointTests):
    def url(self, world):
        return f"/api/v1/projects/{world.project.id}/review/"

    def test_an_annotator_gets_403(self, world):
        response = self.call(world.api(world.bob), world)
        assert response.status_code == 403


class TestReviewResolvePermissions(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, world):
        entry = ReviewEntry.objects.get_or_create(
            item=world.item, source=ReviewSource.EXPLORER, resolved_at=None
        )[0]
        return f"/api/v1/projects/{world.project.id}/review/{entry.id}/resolve/"

    def payload(self, world):
        return {"decision": "accept"}

    def test_an_annotator_gets_403(self, world):
        response = self.call(world.api(world.bob), world)
        assert response.status_code == 403
        assert not Adjudication.objects.exists()


class TestReviewFromAgreementPermissions(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, world):
        return f"/api/v1/projects/{world.project.id}/review/from-agreement/"

    def payload(self, world):
        return {"threshold": 0.5}

    def test_an_annotator_gets_403(self, world):
        assert self.call(world.api(world.bob), world).status_code == 403


def test_sending_an_item_back_raises_its_overlap_and_priority(pairwise_project, alice, api):
    (item,) = _import(pairwise_project, 1, [[0, 1, 0]])
    before = Item.objects.get(pk=item.id)
    entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
    response = api(alice).post(
        f"/api/v1/projects/{pairwise_project.id}/review/{entry.id}/resolve/",
        {"decision": "more_votes", "votes": 2},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["params"] == {"votes": 2, "priority": before.priority + 1.0}
    after = Item.objects.get(pk=item.id)
    assert after.overlap_extra > before.overlap_extra
    assert after.priority == before.priority + 1.0
    assert not after.is_full
    # The adjudicated policy keeps the majority for an item sent back.
    assert _export_rows(pairwise_project, "adjudicated") == _export_rows(
        pairwise_project, "majority"
    )


def _records(project: Project, fmt: str, aggregation: str) -> list[str]:
    params = export.ExportParams.validate(
        {"format": fmt, "aggregation": aggregation, "outputs": ["jsonl"]},
        kind="export",
        project=project,
    )
    job = Job.objects.create(project=project, kind=JobKind.EXPORT, params=params)
    records = export._records(project, export.ExportParams.from_job(job), lambda f, m: None)[0]
    return sorted(repr(record) for record in records)


def test_adjudicated_rankings_ratings_and_corrections_reach_their_formats_only_when_asked(
    project, items, alice, bob
):
    """The all-kinds project: one adjudication per kind, checked in the format that carries it."""
    from annotation.services import annotation_submit, assignment_claim_next

    project.overlap = 2
    project.save()
    dana = MembershipFactory(
        user=get_user_model().objects.create(username="dana"), project=project
    ).user
    item = None
    for user, first in ((bob, 0), (dana, 1)):
        assignment = assignment_claim_next(project=project, annotator=user)
        item = assignment.item
        ids = list(item.responses.order_by("position").values_list("id", flat=True))
        order = [ids[first], ids[1 - first], ids[2]]
        annotation_submit(
            assignment_id=assignment.id,
            user=user,
            answers=[
                {"question": "preference", "chosen": order[0], "rejected": order[1]},
                {"question": "ranking", "ranking": order},
                {
                    "question": "aspects",
                    "ratings": [
                        {"response": r, "aspect": x, "value": 5 if r == order[0] else 1}
                        for r in ids
                        for x in ("helpfulness", "harmlessness", "honesty")
                    ],
                },
            ],
        )
    a, b, c = item.responses.order_by("position").values_list("id", flat=True)
    cases = {
        "ranked_list": {"question": "ranking", "ranking": [[c], [b], [a]]},
        "pointwise": {
            "question": "aspects",
            "ratings": [{"response": a, "aspect": "honesty", "value": 3}],
        },
        "segment_preference": {
            "question": "corrections",
            "corrections": [
                {
                    "response": a,
                    "start": 0,
                    "end": 5,
                    "original_text": "First",
                    "corrected_text": "Fifth",
                }
            ],
        },
    }
    before = {
        (fmt, policy): _records(project, fmt, policy)
        for fmt in cases
        for policy in ("majority", "unanimous", "all", "adjudicated")
    }
    entry = ReviewEntry.objects.create(item=item, source=ReviewSource.EXPLORER)
    review_entry_resolve(entry=entry, user=alice, decision="label", label=list(cases.values()))
    for (fmt, policy), rows in before.items():
        after = _records(project, fmt, policy)
        if policy != "adjudicated":
            assert after == rows, (fmt, policy)
        else:
            assert after != rows, fmt
    ranked = _records(project, "ranked_list", "adjudicated")
    assert len(ranked) == 1 and f"response_ids=({c}, {b}, {a})" in ranked[0]
    pointwise = [
        r for r in _records(project, "pointwise", "adjudicated") if f"response_id={a}," in r
    ]
    assert len(pointwise) == 1 and "scores={'honesty': 3.0}" in pointwise[0]
    segments = _records(project, "segment_preference", "adjudicated")
    assert any("chosen_text='Fifth answer.'" in r and "adjudicated" in r for r in segments)


def test_the_queue_api_reads_a_fixed_number_of_queries_whatever_its_length(
    pairwise_project, alice, api
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    items = _import(pairwise_project, 12, [[0, 1, 0]] * 12)
    client = api(alice)
    url = f"/api/v1/projects/{pairwise_project.id}/review/?state=all"

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    for item in items[:2]:
        entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
        review_entry_resolve(entry=entry, user=alice, decision="accept")
    count()  # the first request also stamps the token's last use
    few = count()
    for item in items[2:]:
        entry = ReviewEntry.objects.create(item=item, source=ReviewSource.AGREEMENT)
        review_entry_resolve(entry=entry, user=alice, decision="accept")
    assert count() == few

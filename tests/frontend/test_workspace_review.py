"""The review pages: queue, entry page, feeds by form, messages; and the annotator's home page."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import AnnotatorMessage, Role
from annotation.pseudonyms import pseudonym
from annotation.services import annotation_submit, assignment_claim_next
from curation.models import Adjudication, Job, JobKind, JobStatus, PairScore, ReviewEntry
from curation.review.services import review_entry_resolve
from tests.factories import ItemFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def entry(project, items):
    return ReviewEntry.objects.create(item=items[0], source="agreement", reason="split vote")


def test_the_queue_and_an_entry_page_open_for_staff_only(project, alice, bob, charlie, entry):
    queue = f"/projects/{project.id}/review/"
    page = f"/projects/{project.id}/review/{entry.id}/"
    response = client_for(alice).get(queue)
    assert response.status_code == 200
    assert "split vote" in response.content.decode()
    assert client_for(alice).get(page).status_code == 200
    for url in (queue, page):
        assert client_for(bob).get(url).status_code == 403
        assert client_for(charlie).get(url).status_code == 404
    other = ItemFactory(project=project)
    assert client_for(alice).get(queue + "?source=nope").status_code == 400
    assert other.id not in [e.item_id for e in ReviewEntry.objects.all()]


def test_the_agreement_form_and_the_suspects_button_feed_the_queue(project, alice, items):
    items[1].agreement = 0.4
    items[1].save(update_fields=["agreement"])
    client = client_for(alice)
    response = client.post(f"/projects/{project.id}/review/from-agreement/", {"threshold": "0.5"})
    assert response.status_code == 302
    assert list(ReviewEntry.objects.values_list("item_id", "source")) == [
        (items[1].id, "agreement")
    ]
    job = Job.objects.create(project=project, kind=JobKind.SUSPECTS, status=JobStatus.SUCCEEDED)
    a, b = items[2].responses.all()[:2]
    PairScore.objects.create(
        job=job,
        item=items[2],
        pair_key="k",
        kind="pairwise",
        question="preference",
        chosen_response=a,
        rejected_response=b,
        margin=-2,
        prob_chosen=0.1,
        quality=0,
        diversity=0,
        importance=0,
        suspect=True,
        suspect_confidence=0.9,
    )
    detail = client.get(f"/projects/{project.id}/jobs/{job.id}/").content.decode()
    assert 'id="suspects-review"' in detail
    client.post(f"/projects/{project.id}/jobs/{job.id}/review/")
    assert ReviewEntry.objects.filter(item=items[2], source="suspects", job=job).exists()
    bad = client.post(f"/projects/{project.id}/review/from-agreement/", {"threshold": "x"})
    assert bad.status_code == 302 and ReviewEntry.objects.count() == 2


def test_an_annotator_sees_gold_accuracy_and_a_curators_message_and_marks_it_read(
    project, alice, bob
):
    project.gold_rate = 1.0
    project.save()
    golds = [
        ItemFactory(
            project=project,
            is_gold=True,
            responses=["Right.", "Wrong."],
            gold_answer={"answers": [{"question": "preference", "chosen": 0, "rejected": 1}]},
        )
        for _ in range(2)
    ]
    for n in range(2):
        assignment = assignment_claim_next(project=project, annotator=bob)
        right, wrong = assignment.item.responses.order_by("position").values_list("id", flat=True)
        chosen, rejected = (right, wrong) if n == 0 else (wrong, right)
        annotation_submit(
            assignment_id=assignment.id,
            user=bob,
            answers=[
                {"question": "preference", "chosen": chosen, "rejected": rejected},
                {"question": "ranking", "ranking": [right, wrong]},
                {
                    "question": "aspects",
                    "ratings": [
                        {"response": r, "aspect": a, "value": 4}
                        for r in (right, wrong)
                        for a in ("helpfulness", "harmlessness", "honesty")
                    ],
                },
            ],
        )
    home = client_for(bob).get("/").content.decode()
    assert 'class="gold-accuracy">50%' in home
    assert home.count("gold-result matched") == 1 and home.count("gold-result missed") == 1

    entry = ReviewEntry.objects.create(item=golds[1], source="gold")
    review_entry_resolve(entry=entry, user=alice, decision="accept")
    name = pseudonym(bob.id, str(project.id))
    page = client_for(alice).get(f"/projects/{project.id}/review/{entry.id}/").content.decode()
    assert name in page and "bob" not in page.split('id="messages"', 1)[1]
    client_for(alice).post(
        f"/projects/{project.id}/review/{entry.id}/message/",
        {"annotator": name, "body": "The <b>first</b> answer was right."},
    )
    message = AnnotatorMessage.objects.get()
    home = client_for(bob).get("/").content.decode()
    assert "The &lt;b&gt;first&lt;/b&gt; answer was right." in home
    assert 'class="unread"' in home
    outsider = UserFactory(username="mallory")
    assert client_for(outsider).post(f"/messages/{message.id}/read/").status_code == 404
    client_for(bob).post(f"/messages/{message.id}/read/")
    message.refresh_from_db()
    assert message.read_at is not None
    assert 'class="read"' in client_for(bob).get("/").content.decode()


def test_a_curator_cannot_see_usernames_on_the_review_page(project, alice, items):
    curator = UserFactory(username="carol")
    MembershipFactory(user=curator, project=project, role=Role.CURATOR)
    annotator = UserFactory(username="zed-the-annotator")
    MembershipFactory(user=annotator, project=project, role=Role.ANNOTATOR)
    assignment = assignment_claim_next(project=project, annotator=annotator)
    a, b, c = assignment.item.responses.order_by("position").values_list("id", flat=True)
    annotation_submit(
        assignment_id=assignment.id,
        user=annotator,
        answers=[
            {"question": "preference", "chosen": a, "rejected": b},
            {"question": "ranking", "ranking": [a, b, c]},
            {
                "question": "aspects",
                "ratings": [
                    {"response": r, "aspect": x, "value": 2}
                    for r in (a, b, c)
                    for x in ("helpfulness", "harmlessness", "honesty")
                ],
            },
        ],
        time_spent_ms=4200,
    )
    entry = ReviewEntry.objects.create(item=assignment.item, source="explorer")
    page = client_for(curator).get(f"/projects/{project.id}/review/{entry.id}/").content.decode()
    assert "zed-the-annotator" not in page
    assert pseudonym(annotator.id, str(project.id)) in page and "4200 ms" in page
    assert not Adjudication.objects.exists()


def test_ai_labels_are_marked_on_the_review_page(project, alice):
    import json

    from annotation.models import Item
    from annotation.services import items_import

    items_import(
        project=project,
        lines=[
            json.dumps(
                {
                    "external_id": "ai-1",
                    "prompt": "Hello?",
                    "responses": ["Hi.", "Go away."],
                    "annotations": [
                        {
                            "source": "ai",
                            "judge": "judge-7",
                            "answers": [{"question": "preference", "chosen": 0, "rejected": 1}],
                        }
                    ],
                }
            )
        ],
        fmt="native",
    )
    item = Item.objects.get(project=project, external_id="ai-1")
    entry = ReviewEntry.objects.create(item=item, source="explanation", reason="feature 12")
    page = client_for(alice).get(f"/projects/{project.id}/review/{entry.id}/").content.decode()
    assert 'class="badge ai-label">AI label' in page and "AI: judge-7" in page
    assert "Explanation job" in page

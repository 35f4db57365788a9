"""Adaptive overlap under real contention on PostgreSQL: people submitting on one item at
once never leave it short of the votes its disagreement asks for, nor past the maximum."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Annotation, Assignment, Item, Membership, Project, Role
from annotation.services import items_import, question_create, token_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Enough items that, without the row lock, two of three simultaneous submits reliably each
# count only two votes and nobody asks for the fourth (seen failing that way in every try).
ITEMS = 80


def _run_together(targets) -> None:
    barrier = threading.Barrier(len(targets))

    def run(target) -> None:
        try:
            barrier.wait()
            target()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    # Counting rows while a thread still submits would fail (or pass) for the wrong reason.
    assert not any(thread.is_alive() for thread in threads), "a submitting thread hung"


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)[1]}")
    return client


def _answer(responses, chosen: int) -> dict:
    return {
        "answers": [
            {
                "question": "preference",
                "chosen": responses[chosen],
                "rejected": responses[1 - chosen],
            }
        ]
    }


@pytest.mark.slow
def test_concurrent_submits_on_one_item_raise_it_exactly_as_far_as_its_votes_ask():
    assert connection.vendor == "postgresql"
    owner = UserFactory(username="owner")
    project = Project.objects.create(
        name="adaptive race",
        created_by=owner,
        adaptive_overlap=True,
        min_annotators=3,
        max_annotators=5,
        agreement_threshold=0.75,
    )
    question_create(project=project, kind="pairwise", name="preference")
    items_import(
        project=project,
        lines=[
            f'{{"external_id": "i{n:02d}", "prompt": "Q{n}", "responses": ["A", "B"]}}'
            for n in range(ITEMS)
        ],
        fmt="native",
    )
    items = list(Item.objects.filter(project=project).order_by("external_id"))
    responses = {
        item.id: list(item.responses.order_by("position").values_list("id", flat=True))
        for item in items
    }
    first_three = []
    for index in range(3):
        user = UserFactory(username=f"first{index}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        first_three.append(user)
    # Phase 1: three annotators hold leases on every item and submit them in the same order,
    # so the three votes of each item arrive at once. Even items are unanimous; on odd ones
    # the second annotator disagrees (2-1), which must ask for a fourth vote exactly once.
    leased_until = timezone.now() + timedelta(hours=1)
    assignments: dict[int, list[int]] = {user.pk: [] for user in first_three}
    for item in items:
        for user in first_three:
            assignments[user.pk].append(
                Assignment.objects.create(
                    project=project, item=item, annotator=user, leased_until=leased_until
                ).pk
            )
    Item.objects.filter(project=project).update(slots_taken=3, is_full=True)
    statuses: Counter = Counter()

    def submit_all(index: int, user) -> None:
        client = _client(user)
        for position, (assignment_id, item) in enumerate(
            zip(assignments[user.pk], items, strict=True)
        ):
            odd = position % 2
            chosen = 1 if odd and index == 1 else 0
            response = client.post(
                f"/api/v1/assignments/{assignment_id}/submit/",
                _answer(responses[item.id], chosen),
                format="json",
            )
            statuses[response.status_code] += 1

    _run_together(
        [lambda i=index, u=user: submit_all(i, u) for index, user in enumerate(first_three)]
    )
    assert statuses == Counter({201: 3 * ITEMS})
    after_first = {
        row["external_id"]: (row["overlap_extra"], row["is_full"])
        for row in Item.objects.filter(project=project).values(
            "external_id", "overlap_extra", "is_full"
        )
    }
    for n in range(ITEMS):
        assert after_first[f"i{n:02d}"] == ((1, False) if n % 2 else (0, True))

    # Phase 2: four more annotators take work at once; each votes B, so an odd item goes
    # A A B B (asks for a fifth) then A A B B B (the maximum). Nothing else is served.
    later = []
    for index in range(4):
        user = UserFactory(username=f"later{index}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        later.append(user)
    errors: list = []
    # An empty queue is final only when nobody else is leasing or holds a lease and no submit
    # landed since the request that found it empty: the last vote on an item can ask for
    # another one after the others were told there was nothing left (seen on a loaded machine).
    state = threading.Lock()
    busy: set[int] = set()
    submits = [0]

    def label_until_empty(user) -> None:
        client = _client(user)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with state:
                seen = submits[0]
                busy.add(user.pk)
            response = client.get(f"/api/v1/projects/{project.id}/next/")
            if response.status_code == 204:
                with state:
                    busy.discard(user.pk)
                    if not busy and submits[0] == seen:
                        return
                time.sleep(0.02)
                continue
            if response.status_code != 200:
                errors.append(("next", response.status_code))
                with state:
                    busy.discard(user.pk)
                return
            body = response.json()
            submit = client.post(
                f"/api/v1/assignments/{body['id']}/submit/",
                _answer([r["id"] for r in body["item"]["responses"]], 1),
                format="json",
            )
            with state:
                submits[0] += 1
                busy.discard(user.pk)
            if submit.status_code != 201:
                errors.append(("submit", submit.status_code, submit.content))
                return
        errors.append(("still labelling after 120 s", user.username))

    _run_together([lambda u=user: label_until_empty(u) for user in later])
    assert not errors, errors[:3]
    votes = Counter(Annotation.objects.filter(project=project).values_list("item_id", flat=True))
    for position, item in enumerate(items):
        assert votes[item.id] == (5 if position % 2 else 3), item.external_id
    rows = Item.objects.filter(project=project)
    assert all(row.is_full and row.slots_taken == votes[row.id] for row in rows)


def test_requests_for_more_votes_racing_claims_never_overfill_an_item():
    from annotation.services import request_more_votes

    owner = UserFactory(username="owner")
    project = Project.objects.create(name="more votes race", overlap=1, created_by=owner)
    question_create(project=project, kind="pairwise", name="preference")
    items_import(
        project=project,
        lines=['{"external_id": "one", "prompt": "Q", "responses": ["A", "B"]}'],
        fmt="native",
    )
    item = Item.objects.get(project=project)
    Item.objects.filter(pk=item.pk).update(slots_taken=1, is_full=True)
    clients = []
    for index in range(6):
        user = UserFactory(username=f"claimer{index}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        clients.append(_client(user))
    statuses: Counter = Counter()

    def claim(client) -> None:
        statuses[client.get(f"/api/v1/projects/{project.id}/next/").status_code] += 1

    def ask() -> None:
        request_more_votes([item.pk], votes=1)

    _run_together([lambda c=c: claim(c) for c in clients] + [ask, ask])
    item.refresh_from_db()
    leased = Assignment.objects.filter(item=item).count()
    # Two requests: each one vote beyond what the item had or had leased when it ran.
    assert 2 <= item.overlap_extra <= 1 + len(clients)
    assert item.slots_taken == 1 + leased == statuses[200] + 1
    assert item.slots_taken <= project.overlap + item.overlap_extra
    assert item.is_full == (item.slots_taken >= project.overlap + item.overlap_extra)

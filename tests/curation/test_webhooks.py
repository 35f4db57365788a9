"""Webhooks: signed deliveries to a real receiver on loopback, retries with backoff, events, permissions.

Signatures are checked by ``verify`` below, written from the Standard Webhooks
specification without Ballot's code. Only 127.0.0.1 is allowed as a target
(``BALLOT_WEBHOOK_ALLOWED_NETWORKS``), so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation import events
from annotation.models import Role
from curation.models import DeliveryStatus, Webhook, WebhookDelivery
from curation.webhooks import selectors, services
from tests.api_mixins import ScopedEndpointTests, World
from tests.curation.receiver import Receiver
from tests.factories import MembershipFactory, UserFactory

ALL_EVENTS = ["annotation.created", "job.finished", "dataset_version.published", "items.imported"]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent Standard Webhooks verifier: HMAC-SHA256 over "{id}.{timestamp}.{body}"."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_") :])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if abs(time.time() - int(headers["webhook-timestamp"])) > 300:
        return False
    return any(
        hmac.compare_digest(candidate.split(",", 1)[1], expected)
        for candidate in headers["webhook-signature"].split(" ")
        if candidate.startswith("v1,")
    )


@pytest.fixture(autouse=True)
def loopback_only(settings, monkeypatch):
    for name in ("BALLOT_WEBHOOK_ALLOW_PRIVATE", "BALLOT_WEBHOOK_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = False
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.BALLOT_WEBHOOK_BACKOFF_SECONDS = 0.05
    settings.BALLOT_WEBHOOK_MAX_ATTEMPTS = 4
    settings.BALLOT_WEBHOOK_TIMEOUT_SECONDS = 5
    settings.BALLOT_WEBHOOKS_IN_THREAD = False


@pytest.fixture(autouse=True)
def fresh_cache():
    # Project ids repeat across tests (each rolls back): no cached answer may leak.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def curator(project):
    user = UserFactory(username="carol")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def _answers(body: dict) -> list[dict]:
    r = [x["id"] for x in body["item"]["responses"]]
    return [
        {"question": "preference", "chosen": r[0], "rejected": r[1], "strength": 1},
        {"question": "ranking", "ranking": r},
        {
            "question": "aspects",
            "ratings": [
                {"response": x, "aspect": a, "value": 3}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
    ]


def _submit(api, user, project, key: str = "k-1"):
    client = api(user)
    body = client.get(f"/api/v1/projects/{project.id}/next/").json()
    response = client.post(
        f"/api/v1/assignments/{body['id']}/submit/",
        {"answers": _answers(body)},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.content
    return response.json()


def _create(api, user, project, url: str, **extra):
    return api(user).post(
        f"/api/v1/projects/{project.id}/webhooks/", {"url": url, **extra}, format="json"
    )


# --- the secret ------------------------------------------------------------------------


def test_the_secret_is_shown_once_on_creation_and_never_again(project, alice, api, receiver):
    created = _create(api, alice, project, receiver.url, description="CI")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"][6:])) == 32
    assert body["events"] == ALL_EVENTS
    client = api(alice)
    base = f"/api/v1/projects/{project.id}/webhooks/"
    for response in (
        client.get(base),
        client.get(f"{base}{body['id']}/"),
        client.patch(f"{base}{body['id']}/", {"active": False}, format="json"),
    ):
        assert response.status_code == 200
        assert body["secret"] not in response.content.decode()
        assert b'"secret"' not in response.content


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"url": "ftp://127.0.0.1/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/"}, "url"),
        ({"url": "http://10.0.0.7/hook"}, "url"),
        ({"url": "http://localhost:9/hook"}, "url"),
        ({"url": "https://hooks.example.com/x", "events": ["item.deleted"]}, "events"),
        ({"url": "https://hooks.example.com/x", "events": []}, "events"),
    ],
)
def test_bad_urls_and_events_are_refused_naming_the_field(
    project, alice, api, payload, field, settings
):
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = []
    response = api(alice).post(f"/api/v1/projects/{project.id}/webhooks/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"].startswith(field)
    assert not Webhook.objects.exists()


# --- delivery, signatures, retries -------------------------------------------------------


def test_a_submitted_annotation_reaches_the_receiver_signed(
    project, items, alice, bob, api, receiver, django_capture_on_commit_callbacks
):
    secret = _create(api, alice, project, receiver.url).json()["secret"]
    with django_capture_on_commit_callbacks(execute=True):
        submitted = _submit(api, bob, project)
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert verify(secret, request.headers, request.body)
    assert not verify(secret, request.headers, request.body + b" ")
    event = json.loads(request.body)
    assert event["type"] == "annotation.created"
    assert event["data"]["annotation_id"] == submitted["annotation"]
    assert event["data"]["source"] == "human"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.SUCCEEDED,
        1,
        200,
    )
    assert request.headers["webhook-id"] == delivery.event_id


def test_500s_are_retried_with_growing_backoff_under_the_same_event_id(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    receiver.answers = [500, 503]
    secret = _create(api, alice, project, receiver.url).json()["secret"]
    webhook = Webhook.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_send_test(webhook=webhook)
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)
    first_gap = receiver.requests[1].at - receiver.requests[0].at
    second_gap = receiver.requests[2].at - receiver.requests[1].at
    assert first_gap >= 0.05 and second_gap >= 0.1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.SUCCEEDED,
        3,
        200,
    )


def test_it_gives_up_after_the_last_attempt_and_records_the_status_code(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    receiver.answers = [500] * 10
    _create(api, alice, project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_send_test(webhook=Webhook.objects.get())
    delivery = WebhookDelivery.objects.get()
    assert len(receiver.requests) == 4
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.FAILED,
        4,
        500,
    )
    assert "500" in delivery.last_error


def test_a_client_error_is_not_retried(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    receiver.answers = [410]
    _create(api, alice, project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_send_test(webhook=Webhook.objects.get())
    delivery = WebhookDelivery.objects.get()
    assert len(receiver.requests) == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.FAILED,
        1,
        410,
    )


def test_a_webhook_whose_address_is_no_longer_allowed_is_refused_without_traffic(
    project, alice, api, receiver, settings, django_capture_on_commit_callbacks
):
    _create(api, alice, project, receiver.url)
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = []
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_send_test(webhook=Webhook.objects.get())
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.REFUSED
    assert "loopback" in delivery.last_error
    assert receiver.requests == []


def test_publishing_the_same_event_twice_delivers_it_once(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    _create(api, alice, project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            events.publish(
                "job.finished", project_id=project.id, payload={"job_id": 1}, key="job.finished:1:1"
            )
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.requests) == 1


def test_only_active_webhooks_subscribed_to_the_event_receive_it(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    other = Receiver().start()
    try:
        _create(api, alice, project, receiver.url, events=["job.finished"])
        off = _create(api, alice, project, other.url).json()
        api(alice).patch(
            f"/api/v1/projects/{project.id}/webhooks/{off['id']}/", {"active": False}, format="json"
        )
        with django_capture_on_commit_callbacks(execute=True):
            events.publish("annotation.created", project_id=project.id, payload={}, key="a:1")
            events.publish("job.finished", project_id=project.id, payload={}, key="j:1")
        assert [json.loads(r.body)["type"] for r in receiver.requests] == ["job.finished"]
        assert other.requests == []
    finally:
        other.stop()


def test_a_project_without_webhooks_costs_no_query_once_its_answer_is_cached(project):
    services.event_receive("annotation.created", project.id, {}, "a:1")  # fills the cache
    with CaptureQueriesContext(connection) as queries:
        services.event_receive("annotation.created", project.id, {}, "a:2")
    assert len(queries) == 0
    assert WebhookDelivery.objects.count() == 0


def test_creating_a_webhook_drops_the_cached_empty_answer(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    assert selectors.webhook_targets(project_id=project.id) == []
    with django_capture_on_commit_callbacks(execute=True):
        webhook_id = _create(api, alice, project, receiver.url).json()["id"]
    assert selectors.webhook_targets(project_id=project.id) == [(webhook_id, ALL_EVENTS)]


# --- API: deliveries, test action, schema ----------------------------------------------


def test_the_delivery_log_shows_status_codes_to_curators(
    project, alice, curator, api, receiver, django_capture_on_commit_callbacks
):
    receiver.answers = [502]
    hook = _create(api, alice, project, receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        sent = api(alice).post(f"/api/v1/projects/{project.id}/webhooks/{hook['id']}/test/")
    assert sent.status_code == 202
    assert sent.json()["event_type"] == "webhook.test"
    log = api(curator).get(f"/api/v1/projects/{project.id}/webhooks/{hook['id']}/deliveries/")
    assert log.status_code == 200
    (row,) = log.json()["results"]
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("succeeded", 2, 200)
    assert row["event_id"] == receiver.requests[0].headers["webhook-id"]


def test_the_webhook_endpoints_are_in_the_openapi_schema(db):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    for path in (
        b"/api/v1/projects/{project_id}/webhooks/",
        b"/api/v1/projects/{project_id}/webhooks/{webhook_id}/",
        b"/api/v1/projects/{project_id}/webhooks/{webhook_id}/test/",
        b"/api/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries/",
    ):
        assert path in schema.content
    assert b"WebhookCreatedOut" in schema.content


# --- permissions -------------------------------------------------------------------------


def hook(world: World) -> Webhook:
    if not hasattr(world, "hook"):
        world.hook = services.webhook_create(
            project=world.project, url="http://127.0.0.1:9/hook", user=world.alice
        )
    return world.hook


def base(world: World) -> str:
    return f"/api/v1/projects/{world.project.id}/webhooks/"


class TestWebhookList(ScopedEndpointTests):
    def url(self, world):
        return base(world)


class TestWebhookCreate(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, world):
        return base(world)

    def payload(self, world):
        return {"url": "http://127.0.0.1:9/hook"}


class TestWebhookDetail(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}{hook(world).id}/"


class TestWebhookPatch(ScopedEndpointTests):
    method = "patch"

    def url(self, world):
        return f"{base(world)}{hook(world).id}/"

    def payload(self, world):
        return {"active": False}


class TestWebhookDelete(ScopedEndpointTests):
    method = "delete"
    member_status = 204

    def url(self, world):
        return f"{base(world)}{hook(world).id}/"


class TestWebhookSendTest(ScopedEndpointTests):
    method = "post"
    member_status = 202

    def url(self, world):
        return f"{base(world)}{hook(world).id}/test/"


class TestWebhookDeliveries(ScopedEndpointTests):
    def url(self, world):
        return f"{base(world)}{hook(world).id}/deliveries/"


def test_annotators_get_403_everywhere(world):
    client = world.api(world.bob)
    url = base(world)
    detail = f"{url}{hook(world).id}/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"url": "http://127.0.0.1:9/x"}, format="json").status_code == 403
    assert client.get(detail).status_code == 403
    assert client.get(f"{detail}deliveries/").status_code == 403
    assert client.post(f"{detail}test/").status_code == 403


def test_curators_read_but_cannot_create_change_delete_or_send(world):
    carol = UserFactory(username="carol")
    MembershipFactory(user=carol, project=world.project, role=Role.CURATOR)
    client = world.api(carol)
    url = base(world)
    detail = f"{url}{hook(world).id}/"
    assert client.get(url).status_code == 200
    assert client.get(detail).status_code == 200
    assert client.get(f"{detail}deliveries/").status_code == 200
    assert client.post(url, {"url": "http://127.0.0.1:9/x"}, format="json").status_code == 403
    assert client.patch(detail, {"active": False}, format="json").status_code == 403
    assert client.delete(detail).status_code == 403
    assert client.post(f"{detail}test/").status_code == 403
    assert Webhook.objects.get().active is True
    assert not WebhookDelivery.objects.exists()


def test_another_projects_webhook_is_404(world, charlie, api):
    from tests.factories import ProjectFactory

    theirs = ProjectFactory(name="Charlie's", created_by=charlie)
    MembershipFactory(user=charlie, project=theirs, role=Role.ADMIN)
    other = services.webhook_create(project=theirs, url="http://127.0.0.1:9/x", user=charlie)
    response = world.api(world.alice).get(f"{base(world)}{other.id}/")
    assert response.status_code == 404


# --- the page ----------------------------------------------------------------------------


def _page(project) -> str:
    return f"/projects/{project.id}/webhooks/"


def test_the_page_shows_the_secret_in_the_creating_answer_only(project, alice, client, receiver):
    client.force_login(alice)
    created = client.post(
        _page(project), {"url": receiver.url, "events": ["job.finished"], "description": "CI"}
    )
    assert created.status_code == 201
    webhook = Webhook.objects.get()
    assert webhook.events == ["job.finished"]
    assert webhook.secret in created.content.decode()
    listed = client.get(_page(project))
    assert listed.status_code == 200
    assert receiver.url in listed.content.decode()
    assert webhook.secret not in listed.content.decode()


def test_the_page_names_a_refused_url_next_to_the_field(project, alice, client, settings):
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = []
    client.force_login(alice)
    response = client.post(
        _page(project), {"url": "http://169.254.169.254/", "events": ["job.finished"]}
    )
    assert response.status_code == 400
    assert 'data-error-for="url"' in response.content.decode()
    assert "metadata" in response.content.decode()
    assert not Webhook.objects.exists()


def test_the_page_refuses_annotators_outsiders_and_curator_changes(
    project, alice, bob, charlie, curator, client
):
    webhook = services.webhook_create(project=project, url="http://127.0.0.1:9/x", user=alice)
    client.force_login(bob)
    assert client.get(_page(project)).status_code == 403
    client.force_login(charlie)
    assert client.get(_page(project)).status_code == 404
    assert client.post(f"{_page(project)}{webhook.id}/delete/").status_code == 404
    client.force_login(curator)
    page = client.get(_page(project))
    assert page.status_code == 200
    assert "webhook-add-form" not in page.content.decode()
    assert webhook.secret not in page.content.decode()
    assert client.post(_page(project), {"url": "http://127.0.0.1:9/y"}).status_code == 403
    for action in ("test", "toggle", "delete"):
        assert client.post(f"{_page(project)}{webhook.id}/{action}/").status_code == 403
    assert Webhook.objects.get().active and not WebhookDelivery.objects.exists()


def test_an_admin_disables_and_deletes_a_webhook_on_the_page(project, alice, client):
    webhook = services.webhook_create(project=project, url="http://127.0.0.1:9/x", user=alice)
    client.force_login(alice)
    response = client.post(f"{_page(project)}{webhook.id}/toggle/", {"active": "0"})
    assert response.status_code == 302
    assert Webhook.objects.get().active is False
    assert client.post(f"{_page(project)}{webhook.id}/delete/").status_code == 302
    assert not Webhook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_deliveries_run_in_a_background_thread(project, alice, receiver, settings):
    settings.BALLOT_WEBHOOKS_IN_THREAD = True
    settings.BALLOT_WEBHOOK_BACKOFF_SECONDS = 0.5
    receiver.answers = [503]
    webhook = services.webhook_create(project=project, url=receiver.url, user=alice)
    delivery = services.webhook_send_test(webhook=webhook)
    # Inline, the call would return only after both attempts and the pause between them.
    assert len(receiver.requests) < 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status != DeliveryStatus.PENDING:
            break
        time.sleep(0.05)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


# --- events from curation ----------------------------------------------------------------


def _events(receiver: Receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


def test_finished_failed_and_cancelled_jobs_each_send_job_finished_once(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    from curation.models import Job, JobStatus
    from curation.services import job_cancel, job_fail, job_finish

    secret = _create(api, alice, project, receiver.url, events=["job.finished"]).json()["secret"]
    done, broken = (
        Job.objects.create(project=project, kind="export", status=JobStatus.RUNNING)
        for _ in range(2)
    )
    queued = Job.objects.create(project=project, kind="export")
    with django_capture_on_commit_callbacks(execute=True):
        assert job_finish(job_id=done.id, result={"rows": 3})
        job_fail(job_id=broken.id, error="ValueError: boom")
        job_cancel(job=queued)
        # Already finished: no second event.
        assert not job_finish(job_id=done.id, result={})
        job_fail(job_id=done.id, error="late")
    seen = {(e["data"]["job_id"], e["data"]["status"]) for e in _events(receiver)}
    assert seen == {(done.id, "succeeded"), (broken.id, "failed"), (queued.id, "cancelled")}
    assert len(receiver.requests) == 3
    assert all(e["type"] == "job.finished" for e in _events(receiver))
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)
    failed = next(e for e in _events(receiver) if e["data"]["status"] == "failed")
    assert failed["data"]["error"] == "ValueError: boom"


def test_publishing_a_dataset_version_sends_dataset_version_published(
    project, items, alice, api, receiver, settings, tmp_path, django_capture_on_commit_callbacks
):
    from curation.models import DatasetVersion, JobKind
    from curation.services import job_create

    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False
    _create(api, alice, project, receiver.url, events=["dataset_version.published"])
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(
            project=project,
            kind=JobKind.EXPORT,
            params={"format": "trl_preference", "outputs": ["jsonl"]},
            user=alice,
        )
    version = DatasetVersion.objects.get(job=job)
    (event,) = _events(receiver)
    assert event["type"] == "dataset_version.published"
    assert event["data"]["dataset_version_id"] == version.id
    assert event["data"]["version"] == version.version
    assert event["data"]["job_id"] == job.id


def test_django_admin_never_shows_the_secret_and_drops_the_cached_targets(project, alice, client):
    from django.contrib.auth import get_user_model

    webhook = services.webhook_create(project=project, url="http://127.0.0.1:9/x", user=alice)
    assert selectors.webhook_targets(project_id=project.id) == [(webhook.id, ALL_EVENTS)]
    root = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(root)
    url = f"/admin/curation/webhook/{webhook.id}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert webhook.secret not in page.content.decode()
    saved = client.post(url, {"description": "paused", "active": ""})
    assert saved.status_code == 302, saved.content
    assert Webhook.objects.get().active is False
    assert selectors.webhook_targets(project_id=project.id) == []


def test_with_a_broker_each_attempt_is_a_task_on_the_default_queue_rescheduled_after_backoff(
    project, alice, receiver, settings, monkeypatch
):
    from celery import current_app

    from curation.webhooks.tasks import deliver_webhook

    settings.CELERY_TASK_ALWAYS_EAGER = False
    # Long enough that the early redelivery below is early even on a loaded machine.
    settings.BALLOT_WEBHOOK_BACKOFF_SECONDS = 1.0
    sent: list[dict] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, **kw: sent.append({"name": name, **kw})
    )
    monkeypatch.setattr(
        deliver_webhook,
        "apply_async",
        lambda **kw: sent.append({"name": deliver_webhook.name, **kw}),
    )
    receiver.answers = [500]
    webhook = services.webhook_create(project=project, url=receiver.url, user=alice)
    delivery = services.deliveries_create(
        webhook_ids=[webhook.id], event_type="job.finished", key="j:9", payload={}
    )[0]
    services.delivery_schedule(delivery_id=delivery.id)
    assert sent == [
        {
            "name": "curation.deliver_webhook",
            "args": [delivery.id],
            "countdown": 0.0,
            "queue": "default",
        }
    ]
    deliver_webhook(delivery.id)  # the worker runs it: 500, so it comes back after the backoff
    assert sent[-1] == {
        "name": "curation.deliver_webhook",
        "args": [delivery.id],
        "countdown": 1.0,
        "queue": "default",
    }
    deliver_webhook(delivery.id)  # early (a duplicate): sends nothing, comes back when due
    assert len(receiver.requests) == 1
    assert 0 < sent[-1]["countdown"] <= 1.0
    time.sleep(sent[-1]["countdown"] + 0.01)
    deliver_webhook(delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("succeeded", 2, 2)


def test_webhooks_resume_sends_overdue_deliveries_whose_scheduler_was_lost(
    project, alice, receiver
):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    webhook = services.webhook_create(project=project, url=receiver.url, user=alice)
    # Stored, never scheduled (as when the process that held the retry died).
    lost = services.deliveries_create(
        webhook_ids=[webhook.id], event_type="job.finished", key="j:lost", payload={}
    )[0]
    fresh = services.deliveries_create(
        webhook_ids=[webhook.id], event_type="job.finished", key="j:fresh", payload={}
    )[0]
    WebhookDelivery.objects.filter(pk=lost.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    out = io.StringIO()
    call_command("webhooks_resume", stdout=out)
    assert out.getvalue().strip() == "1 overdue webhook delivery scheduled"
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert (lost.status, fresh.status) == (DeliveryStatus.SUCCEEDED, DeliveryStatus.PENDING)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [lost.event_id]


def test_an_import_sends_one_items_imported_summary(
    project, alice, api, receiver, django_capture_on_commit_callbacks
):
    from annotation.services.imports import items_import

    _create(api, alice, project, receiver.url, events=["items.imported", "annotation.created"])
    lines = [
        json.dumps({"prompt": f"Question {n}?", "chosen": "A good answer.", "rejected": "No."})
        for n in range(3)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = items_import(project=project, lines=lines, fmt="trl")
        again = items_import(project=project, lines=lines, fmt="trl")  # nothing new: no event
    assert (result.created, again.created, again.existing) == (3, 0, 3)
    (event,) = _events(receiver)
    assert event["type"] == "items.imported"
    assert event["data"]["created"] == 3
    assert event["data"]["annotations"] == result.annotations
    assert "invalid_lines" not in event["data"]

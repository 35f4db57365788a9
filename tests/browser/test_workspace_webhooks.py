"""The webhooks page in headless Chromium: create (secret once), send a test, read the delivery log.

The receiver is a real HTTP server on 127.0.0.1, the only address the test allows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from annotation.models import Role
from curation.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.curation.receiver import Receiver
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (360, 768, 1400)


@pytest.fixture(autouse=True)
def loopback_only(settings, monkeypatch):
    for name in ("BALLOT_WEBHOOK_ALLOW_PRIVATE", "BALLOT_WEBHOOK_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = False
    settings.BALLOT_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.BALLOT_WEBHOOK_BACKOFF_SECONDS = 0.05
    settings.BALLOT_WEBHOOKS_IN_THREAD = False


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def erin(project):
    """A curator of the project."""
    user = UserFactory(username="erin")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def signed_by(secret: str, request) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + request.body, hashlib.sha256).digest()
    return request.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def assert_fits_every_width(page, name: str, screenshot) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("() => window.scrollTo(0, 0)")
        page.wait_for_timeout(100)
        measured = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth,"
            " client: document.documentElement.clientWidth})"
        )
        screenshot(page, f"workspace-{name}-{width}", full_page=True)
        wide = page.evaluate(
            "() => [...document.querySelectorAll('body *')]"
            ".filter(e => !e.closest('.table-scroll') && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)"
        )
        assert measured["scroll"] <= measured["client"], (name, width, measured, wide)
    page.set_viewport_size({"width": 1400, "height": 900})


def test_an_admin_creates_a_webhook_sees_the_secret_once_sends_a_test_and_reads_the_log(
    page, login, screenshot, project, alice, receiver
):
    receiver.answers = [500]  # the first attempt fails: the log shows the retry
    login(page, "alice")
    page.goto(f"/projects/{project.id}/webhooks/")
    assert page.locator(".workspace-nav a[aria-current=page]").inner_text() == "Webhooks"
    page.fill("#webhook-url", receiver.url)
    page.fill("#webhook-description", "CI <b>receiver</b>")
    page.uncheck("input[name=events][value='annotation.created']")
    page.click("#webhook-create")

    secret = page.input_value("#webhook-secret-value")
    webhook = Webhook.objects.get()
    assert secret == webhook.secret and secret.startswith("whsec_")
    assert webhook.events == ["job.finished", "dataset_version.published", "items.imported"]
    assert webhook.created_by == alice
    # The description is text, never markup.
    assert page.locator("#webhook-table b").count() == 0
    assert "CI <b>receiver</b>" in page.locator("#webhook-table").inner_text()
    assert_fits_every_width(page, "webhooks-created", screenshot)

    page.click(f"tr[data-webhook='{webhook.id}'] .webhook-test")
    page.wait_for_url("**/webhooks/#delivery-log")
    assert secret not in page.content()  # shown once, never again
    row = page.locator("#delivery-table tbody tr").first
    assert row.locator(".delivery-status").inner_text() == "succeeded"
    assert row.locator(".delivery-code").inner_text() == "200"
    assert "webhook.test" in row.inner_text()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)
    assert len(receiver.requests) == 2
    assert all(signed_by(secret, request) for request in receiver.requests)
    assert json.loads(receiver.requests[-1].body)["type"] == "webhook.test"
    assert_fits_every_width(page, "webhooks-log", screenshot)

    page.click(f"tr[data-webhook='{webhook.id}'] .webhook-toggle")
    page.wait_for_selector(f"tr[data-webhook='{webhook.id}'] .badge:text('disabled')")
    assert Webhook.objects.get().active is False
    # Deleting asks first; dismissing the question keeps the webhook.
    page.click(f"tr[data-webhook='{webhook.id}'] .webhook-delete")
    assert page.dialogs and "Delete the webhook" in page.dialogs[-1]
    assert Webhook.objects.filter(pk=webhook.pk).exists()
    assert page.errors == []


def test_a_curator_reads_webhooks_and_deliveries_without_forms_or_secrets(
    page, login, screenshot, project, alice, erin, receiver
):
    from curation.webhooks.services import webhook_create

    webhook = webhook_create(project=project, url=receiver.url, user=alice)
    WebhookDelivery.objects.create(
        webhook=webhook,
        event_type="job.finished",
        event_id="msg_0123456789abcdef0123456789abcdef",
        payload={},
        attempts=3,
        status=DeliveryStatus.FAILED,
        last_status_code=503,
        last_error="The receiver answered 503.",
    )
    login(page, "erin")
    page.goto(f"/projects/{project.id}/webhooks/")
    assert page.locator("#webhook-add-form").count() == 0
    assert page.locator(".webhook-test").count() == 0
    assert webhook.secret not in page.content()
    row = page.locator("#delivery-table tbody tr").first
    assert row.locator(".delivery-status").inner_text() == "failed"
    assert row.locator(".delivery-code").inner_text() == "503"
    assert_fits_every_width(page, "webhooks-curator", screenshot)
    assert page.errors == []

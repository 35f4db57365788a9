"""Writes for webhooks: manage subscriptions, turn events into deliveries, attempt them.

A delivery is attempted by ``delivery_attempt``: one POST through the outbound
client, its outcome recorded on the row. A transient failure (a network error,
408/425/429/5xx) is tried again after an exponential backoff
(``BALLOT_WEBHOOK_BACKOFF_SECONDS`` × 2^(attempt-1), capped at
``BALLOT_WEBHOOK_BACKOFF_MAX_SECONDS``), up to ``BALLOT_WEBHOOK_MAX_ATTEMPTS``.
With a broker the retries are Celery tasks with a countdown on queue
``default``; without one they run in-process (a background thread, or inline
when ``BALLOT_WEBHOOKS_IN_THREAD`` is off, as in tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation.errors import ValidationFailed
from annotation.models import Project
from curation import outbound
from curation.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from curation.webhooks import signing
from curation.webhooks.selectors import targets_cache_key, webhook_targets

log = logging.getLogger(__name__)

TEST_EVENT = "webhook.test"
DELIVER_TASK = "curation.deliver_webhook"
EDITABLE_FIELDS = ("url", "description", "events", "active")


def max_attempts() -> int:
    return max(int(outbound.setting("BALLOT_WEBHOOK_MAX_ATTEMPTS", 8)), 1)


def backoff_seconds(attempt: int) -> float:
    """Wait before attempt ``attempt + 1``: base × 2^(attempt-1), capped."""
    base = float(outbound.setting("BALLOT_WEBHOOK_BACKOFF_SECONDS", 30))
    cap = float(outbound.setting("BALLOT_WEBHOOK_BACKOFF_MAX_SECONDS", 3600))
    return min(base * 2 ** max(attempt - 1, 0), cap)


def _in_thread() -> bool:
    value = outbound.setting("BALLOT_WEBHOOKS_IN_THREAD", None)
    if value is None:
        return bool(getattr(settings, "BALLOT_JOBS_IN_THREAD", False))
    return outbound.as_bool(value)


# --- managing webhooks -----------------------------------------------------------------


def _clean_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url is required.", field="url")
    url = url.strip()
    if len(url) > 2000:
        raise ValidationFailed("url must be at most 2000 characters.", field="url")
    try:
        refusal = outbound.literal_address_refusal(url)
    except outbound.TransportError as exc:
        raise ValidationFailed(f"url: {exc.message}", field="url")
    if refusal:
        raise ValidationFailed(
            f"url points to {refusal}, which webhooks may not call "
            "(see BALLOT_WEBHOOK_ALLOW_PRIVATE and BALLOT_WEBHOOK_ALLOWED_NETWORKS).",
            field="url",
        )
    return url


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ValidationFailed(
            f"events must be a non-empty list of: {', '.join(WebhookEvent.values)}.",
            field="events",
        )
    unknown = [event for event in events if event not in WebhookEvent.values]
    if unknown:
        raise ValidationFailed(
            f"Unknown event {unknown[0]!r}; events are: {', '.join(WebhookEvent.values)}.",
            field="events",
        )
    return [event for event in WebhookEvent.values if event in events]


def _forget_targets(project_id: int) -> None:
    # Now, and again after commit: a reader that refills the cache between the two
    # reads the old rows and would otherwise keep the old list for a whole TTL.
    key = targets_cache_key(project_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


@transaction.atomic
def webhook_create(
    *,
    project: Project,
    url: Any,
    events: Any = None,
    description: str = "",
    active: bool = True,
    user: AbstractBaseUser | None = None,
) -> Webhook:
    """Store a webhook with a fresh ``whsec_`` secret. The caller shows the secret once."""
    webhook = Webhook.objects.create(
        project=project,
        url=_clean_url(url),
        events=_clean_events(list(WebhookEvent.values) if events is None else events),
        description=(description or "")[:200],
        active=bool(active),
        secret=signing.secret_generate(),
        created_by=user,
    )
    _forget_targets(project.id)
    return webhook


@transaction.atomic
def webhook_update(*, webhook: Webhook, data: Mapping[str, Any]) -> Webhook:
    """Change url, description, events or active. The secret never changes here."""
    changed: list[str] = []
    if "url" in data:
        webhook.url = _clean_url(data["url"])
        changed.append("url")
    if "events" in data:
        webhook.events = _clean_events(data["events"])
        changed.append("events")
    if "description" in data:
        webhook.description = str(data["description"] or "")[:200]
        changed.append("description")
    if "active" in data:
        webhook.active = bool(data["active"])
        changed.append("active")
    if changed:
        webhook.save(update_fields=[*changed, "updated_at"])
        _forget_targets(webhook.project_id)
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    project_id = webhook.project_id
    webhook.delete()
    _forget_targets(project_id)


# --- from events to deliveries ---------------------------------------------------------


def event_id_for(key: str) -> str:
    """The ``webhook-id`` of an occurrence: derived from its key, so a re-published event keeps it."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _envelope(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": timezone.now().isoformat(), "data": dict(payload)}


def deliveries_create(
    *, webhook_ids: Iterable[int], event_type: str, key: str, payload: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """One pending delivery per webhook, unless that webhook already has this event.

    The unique (webhook, event_id) constraint makes publishing twice harmless:
    the second insert fails in its savepoint and nothing new is sent.
    """
    event_id = event_id_for(key)
    envelope = _envelope(event_type, payload)
    created: list[WebhookDelivery] = []
    for webhook_id in webhook_ids:
        try:
            with transaction.atomic():
                created.append(
                    WebhookDelivery.objects.create(
                        webhook_id=webhook_id,
                        event_type=event_type,
                        event_id=event_id,
                        payload=envelope,
                        next_attempt_at=timezone.now(),
                    )
                )
        except IntegrityError:
            continue
    return created


def event_receive(event_type: str, project_id: int, payload: Mapping[str, Any], key: str) -> None:
    """Listener on ``annotation.events``: queue a delivery for every webhook that wants the event."""
    webhook_ids = [
        webhook_id
        for webhook_id, events in webhook_targets(project_id=project_id)
        if event_type in events
    ]
    if not webhook_ids:
        return
    for delivery in deliveries_create(
        webhook_ids=webhook_ids, event_type=event_type, key=key, payload=payload
    ):
        delivery_schedule_after_commit(delivery_id=delivery.pk)


@transaction.atomic
def webhook_send_test(*, webhook: Webhook) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this webhook (even when it is disabled)."""
    (delivery,) = deliveries_create(
        webhook_ids=[webhook.pk],
        event_type=TEST_EVENT,
        key=f"{TEST_EVENT}:{uuid.uuid4()}",
        payload={
            "webhook_id": webhook.pk,
            "project_id": webhook.project_id,
            "message": "A test event from Ballot.",
        },
    )
    delivery_schedule_after_commit(delivery_id=delivery.pk)
    return delivery


# --- attempts --------------------------------------------------------------------------


def _finish(delivery_id: int, *, status: str, code: int | None = None, error: str = "") -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        status=status,
        last_status_code=code,
        last_error=error[:2000],
        next_attempt_at=None,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_attempt(*, delivery_id: int) -> float | None:
    """Make the next attempt of a pending delivery that is due.

    Returns the seconds to wait before the next attempt (also when called before
    it is due), or None when the delivery is finished or another runner took it.
    The attempt is claimed by compare-and-set on ``attempts``, so two runners
    never send the same attempt; no lock is held while the request is in flight.
    """
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    now = timezone.now()
    if delivery.next_attempt_at and delivery.next_attempt_at > now:
        # Early: a duplicate schedule, or a worker whose clock runs ahead. Come back
        # when due rather than drop it, so a delivery is never left pending forever;
        # the claim below keeps duplicates from sending an attempt twice.
        return (delivery.next_attempt_at - now).total_seconds()
    attempt = delivery.attempts + 1
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    ).update(attempts=attempt, updated_at=now)
    if not claimed:
        return None
    webhook = delivery.webhook
    if not webhook.active and delivery.event_type != TEST_EVENT:
        _finish(delivery.pk, status=DeliveryStatus.FAILED, error="The webhook was disabled.")
        return None
    body = body_bytes(delivery.payload)
    headers = signing.headers(
        secret=webhook.secret, message_id=delivery.event_id, timestamp=int(time.time()), body=body
    )
    try:
        response = outbound.post(webhook.url, body=body, headers=headers)
    except outbound.AddressRefused as exc:
        _finish(delivery.pk, status=DeliveryStatus.REFUSED, error=exc.message)
        return None
    except outbound.TransportError as exc:
        if exc.permanent or attempt >= max_attempts():
            _finish(
                delivery.pk, status=DeliveryStatus.FAILED, code=exc.status_code, error=exc.message
            )
            return None
        delay = backoff_seconds(attempt)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            last_status_code=exc.status_code,
            last_error=exc.message[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            updated_at=timezone.now(),
        )
        return delay
    _finish(delivery.pk, status=DeliveryStatus.SUCCEEDED, code=response.status_code)
    return None


def deliveries_resume(*, overdue_seconds: float = 60.0) -> int:
    """Schedule every pending delivery whose next attempt is overdue; return how many.

    For deliveries whose scheduler is gone: an in-process thread that died with its
    web process, a broker that lost its message. Scheduling one that is still
    alive is harmless: the attempt is claimed once, an early call just waits.
    """
    cutoff = timezone.now() - timedelta(seconds=overdue_seconds)
    overdue = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff
        ).values_list("id", flat=True)
    )
    for delivery_id in overdue:
        delivery_schedule(delivery_id=delivery_id)
    return len(overdue)


def delivery_schedule_after_commit(*, delivery_id: int) -> None:
    # The worker or thread reads the row through another connection: wait for the commit.
    transaction.on_commit(lambda: delivery_schedule(delivery_id=delivery_id))


def delivery_schedule(*, delivery_id: int, delay: float = 0.0) -> None:
    """Run the delivery's next attempt after ``delay`` seconds, on Celery or in-process."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        # By name: the task module imports this one, not the other way round.
        current_app.send_task(DELIVER_TASK, args=[delivery_id], countdown=delay, queue="default")
        return
    if _in_thread():
        threading.Thread(
            target=_deliver_in_process,
            args=(delivery_id, delay, True),
            daemon=True,
            name=f"ballot-webhook-{delivery_id}",
        ).start()
    else:
        _deliver_in_process(delivery_id, delay, False)


def _deliver_in_process(delivery_id: int, delay: float, own_connection: bool) -> None:
    try:
        next_delay: float | None = delay
        while next_delay is not None:
            if next_delay > 0:
                time.sleep(next_delay)
            next_delay = delivery_attempt(delivery_id=delivery_id)
    except Exception:
        log.exception("webhook delivery %s failed in-process", delivery_id)
    finally:
        if own_connection:
            connection.close()

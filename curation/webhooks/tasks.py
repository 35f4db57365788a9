"""The Celery task that makes one webhook delivery attempt and schedules the next one."""

from __future__ import annotations

from celery import shared_task

from curation.webhooks.services import delivery_attempt


@shared_task(name="curation.deliver_webhook", acks_late=True, ignore_result=True, time_limit=300)
def deliver_webhook(delivery_id: int) -> None:
    """Attempt the delivery; after a transient failure, come back after the backoff.

    Safe to run twice: an attempt is claimed by compare-and-set, and an attempt
    that is not due yet is left to the task that scheduled it.
    """
    delay = delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        deliver_webhook.apply_async(args=[delivery_id], countdown=delay, queue="default")

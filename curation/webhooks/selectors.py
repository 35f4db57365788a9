"""Reads for webhooks, scoped to the caller's projects, and the cached "who listens here" look-up."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import QuerySet

from annotation.errors import NotFound
from annotation.models import Project
from annotation.selectors import STAFF_ROLES, project_get_for
from curation.models import Webhook, WebhookDelivery

# Long enough that a busy project asks the database about its webhooks rarely,
# short enough that a process whose local cache missed an invalidation (LocMem
# cache, several processes, no REDIS_URL) catches up soon.
TARGETS_CACHE_SECONDS = 60


def targets_cache_key(project_id: int) -> str:
    return f"ballot:webhooks:targets:{project_id}"


def webhook_targets(*, project_id: int) -> list[tuple[int, list[str]]]:
    """(webhook id, event types) of the project's active webhooks, from the cache when possible.

    Every stored annotation asks this, so a project without webhooks must cost no
    query: the (possibly empty) answer is cached and dropped whenever a webhook
    of the project is saved or deleted.
    """
    key = targets_cache_key(project_id)
    targets = cache.get(key)
    if targets is None:
        targets = [
            (webhook_id, list(events or []))
            for webhook_id, events in Webhook.objects.filter(
                project_id=project_id, active=True
            ).values_list("id", "events")
        ]
        cache.set(key, targets, TARGETS_CACHE_SECONDS)
    return targets


def webhook_list_for(*, project: Project) -> QuerySet[Webhook]:
    return Webhook.objects.filter(project=project).order_by("id")


def webhook_get_for(
    *,
    user: AbstractBaseUser,
    project_id: int,
    webhook_id: int | str,
    roles: Iterable[str] = STAFF_ROLES,
) -> Webhook:
    """A webhook of a project the user has one of ``roles`` in; ``NotFound`` for any other id."""
    project, _ = project_get_for(user=user, project_id=project_id, roles=roles)
    try:
        pk = int(webhook_id)
    except (TypeError, ValueError):
        raise NotFound("No such webhook.")
    webhook = Webhook.objects.filter(project=project, pk=pk).select_related("project").first()
    if webhook is None:
        raise NotFound("No such webhook.")
    return webhook


def delivery_list_for(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook)


def project_delivery_list(*, project: Project, limit: int = 50) -> list[WebhookDelivery]:
    """The project's latest deliveries, newest first, for the delivery log on the page."""
    return list(
        WebhookDelivery.objects.filter(webhook__project=project)
        .select_related("webhook")
        .order_by("-id")[:limit]
    )

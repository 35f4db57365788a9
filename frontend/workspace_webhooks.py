"""The project's webhooks page: create (secret shown once), enable/disable, delete, send a test, delivery log.

Admins manage webhooks; curators see the list and the delivery log, read-only.
The page works without scripts: every action is a POST form with CSRF. A new
webhook's secret is rendered in the answer to the creating POST and stored
nowhere else on the way (no session, no message), so a reload of the list
never shows it again.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotation.errors import BallotError, Forbidden, NotFound
from annotation.selectors import ADMIN_ONLY, STAFF_ROLES, project_get_for
from curation.webhooks import selectors as webhook_selectors
from curation.webhooks import services as webhook_services

EVENT_CHOICES = [
    ("annotation.created", "Annotation created"),
    ("job.finished", "Job finished"),
    ("dataset_version.published", "Dataset version published"),
    ("items.imported", "File imported (summary)"),
]
LOG_ROWS = 50


def _project_or_404(request: HttpRequest, project_id: int, roles: tuple) -> tuple[Any, str]:
    try:
        return project_get_for(user=request.user, project_id=project_id, roles=roles)
    except NotFound:
        raise Http404("No such project.")
    except Forbidden:
        if roles == ADMIN_ONLY:
            raise PermissionDenied("Only the project's admins manage its webhooks.")
        raise PermissionDenied("This page is for the project's admins and curators.")


def _webhook_or_404(request: HttpRequest, project_id: int, webhook_id: int):
    _project_or_404(request, project_id, ADMIN_ONLY)
    try:
        return webhook_selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id, roles=ADMIN_ONLY
        )
    except NotFound:
        raise Http404("No such webhook.")


def _render(
    request: HttpRequest,
    project,
    role: str,
    *,
    created=None,
    form: dict[str, Any] | None = None,
    error: BallotError | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "frontend/workspace/webhooks.html",
        {
            "project": project,
            "section": "webhook-list",
            "is_admin": role in ADMIN_ONLY,
            "webhooks": list(webhook_selectors.webhook_list_for(project=project)),
            "deliveries": webhook_selectors.project_delivery_list(project=project, limit=LOG_ROWS),
            "event_choices": EVENT_CHOICES,
            "created": created,
            "form": form or {"url": "", "description": "", "events": [c[0] for c in EVENT_CHOICES]},
            "error": error,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest, project_id: int) -> HttpResponse:
    if request.method == "GET":
        project, role = _project_or_404(request, project_id, STAFF_ROLES)
        return _render(request, project, role)
    project, role = _project_or_404(request, project_id, ADMIN_ONLY)
    form = {
        "url": request.POST.get("url", ""),
        "description": request.POST.get("description", ""),
        "events": request.POST.getlist("events"),
    }
    try:
        webhook = webhook_services.webhook_create(
            project=project,
            url=form["url"],
            events=form["events"],
            description=form["description"],
            user=request.user,
        )
    except BallotError as error:
        return _render(request, project, role, form=form, error=error, status=400)
    # Rendered, not redirected: the secret appears in this answer only.
    return _render(request, project, role, created=webhook, status=201)


@login_required
@require_POST
def webhook_toggle(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = _webhook_or_404(request, project_id, webhook_id)
    active = request.POST.get("active") == "1"
    webhook_services.webhook_update(webhook=webhook, data={"active": active})
    messages.success(request, f"Webhook {'enabled' if active else 'disabled'}: {webhook.url}")
    return redirect(reverse("frontend:webhook-list", kwargs={"project_id": project_id}))


@login_required
@require_POST
def webhook_delete(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = _webhook_or_404(request, project_id, webhook_id)
    url = webhook.url
    webhook_services.webhook_delete(webhook=webhook)
    messages.success(request, f"Webhook deleted: {url}")
    return redirect(reverse("frontend:webhook-list", kwargs={"project_id": project_id}))


@login_required
@require_POST
def webhook_send_test(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = _webhook_or_404(request, project_id, webhook_id)
    webhook_services.webhook_send_test(webhook=webhook)
    messages.success(request, f"Test event queued for {webhook.url}; see the delivery log.")
    return redirect(
        reverse("frontend:webhook-list", kwargs={"project_id": project_id}) + "#delivery-log"
    )

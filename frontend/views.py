"""Pages for annotators and curators, and the two small JSON endpoints the labeling page talks to.

Views parse input, call the annotation app's services and selectors, and render.
Objects are fetched only through the scoped selectors, so an outsider gets the
same 404 as for an id that does not exist.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors, services
from annotation.errors import (
    DATABASE_UNAVAILABLE,
    BallotError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
)
from annotation.parsers import json_loads_strict
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES
from annotation.serializers import QuestionOut, assignment_out
from annotation.services.feedback import annotator_message_mark_read, annotator_messages_for
from annotation.services.gold import gold_summary_for
from frontend.forms import ConsentForm, ProfileForm
from frontend.presentation import annotation_views, response_label
from frontend.queue import assignment_lease_ahead

if TYPE_CHECKING:
    from annotation.models import AnnotatorProfile, Project

# --- helpers -------------------------------------------------------------------------------


def healthz(request: HttpRequest) -> JsonResponse:
    selectors.database_ping()
    return JsonResponse({"ok": True})


def _project_or_404(request: HttpRequest, project_id: int, roles=None) -> tuple[Project, str]:
    try:
        return selectors.project_get_for(user=request.user, project_id=project_id, roles=roles)
    except NotFound:
        raise Http404("No such project.")
    except Forbidden:
        raise PermissionDenied("This page is for the project's admins and curators.")


def _safe_next(request: HttpRequest, fallback: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def json_login_required(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Like ``login_required`` but answers 401 JSON instead of redirecting a fetch() to a login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        if not request.user.is_authenticated:
            return JsonResponse(
                {
                    "error": "not_authenticated",
                    "detail": "Your session ended. Sign in again.",
                    "field": None,
                    "errors": [],
                },
                status=401,
            )
        try:
            return view(request, *args, **kwargs)
        except BallotError as error:
            return JsonResponse(error.as_dict(), status=error.status_code)

    return wrapper


def _assignment_payload(*, project: Project, user) -> dict | None:
    """Lease the next item to ``user`` (or return their live lease) in the shape of the API's next/.

    Adds ``progress``: the item's place among everything this annotator labels in
    the project ("x of N"), counted like the home page's done, skipped and remaining.
    """
    assignment = services.assignment_claim_next(project=project, annotator=user)
    if assignment is None:
        return None
    assignment = selectors.assignment_responses_prefetch(assignment=assignment)
    payload = assignment_out(assignment)
    stats = selectors.project_progress_for(user=user, projects=[project])[project.id]
    finished = stats["done"] + stats["skipped"]
    payload["progress"] = {"position": finished + 1, "total": finished + stats["remaining"]}
    return payload


# --- error pages (config/urls.py handler400/403/404/500) -------------------------------------
# Pages get the site's look; anything under /api/ keeps the API's one JSON error
# shape, even for a URL no view matches. Only used with DEBUG off: with DEBUG on,
# Django shows its debug pages instead (DJANGO_DEBUG=1, see config/settings/local.py).


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _error_response(
    request: HttpRequest, *, error: BallotError, template: str, context: dict | None = None
) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error.as_dict(), status=error.status_code)
    return render(request, template, context or {}, status=error.status_code)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_response(
        request, error=ValidationFailed("The request could not be understood."), template="400.html"
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Our own PermissionDenied messages are written for the reader; show them.
    reason = str(exception or "") or "You do not have access to this."
    return _error_response(
        request, error=Forbidden(reason), template="403.html", context={"reason": reason}
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    # Django's reason ("CSRF cookie not set.") means nothing to a person; say what to do.
    return permission_denied(
        request,
        PermissionDenied(
            "This form expired or was sent from another site. Reload the page and try again."
        ),
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Never echo the resolver's message: it lists the URL patterns that were tried.
    return _error_response(
        request, error=NotFound(f"Nothing at {request.path}."), template="404.html"
    )


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this while handling the exception: a database out of reach outside
    # the API views (middleware, pages) is a 503 to retry, not a 500.
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        error = Unavailable()
        if _wants_json(request):
            response = JsonResponse(error.as_dict(), status=error.status_code)
        else:
            response = HttpResponse(
                loader.get_template("500.html").render({}), status=error.status_code
            )
        response["Retry-After"] = str(error.retry_after_seconds)
        return response
    if _wants_json(request):
        return JsonResponse(
            {
                "error": "server_error",
                "detail": "Something went wrong on the server; it has been logged.",
                "field": None,
                "errors": [],
            },
            status=500,
        )
    # No request context: the failure may be in what the context processors touch
    # (the session, the database), and this page must still render.
    return HttpResponse(loader.get_template("500.html").render({}), status=500)


# --- home, onboarding, profile ----------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.project_list_for(user=request.user))
    progress = selectors.project_progress_for(user=request.user, projects=projects)
    roles = selectors.membership_roles_for(user=request.user)
    gold = gold_summary_for(user=request.user, projects=projects)
    rows = []
    for project in projects:
        role = "admin" if request.user.is_superuser else roles.get(project.id, "")
        stats = progress[project.id]
        total = stats["done"] + stats["skipped"] + stats["remaining"]
        rows.append(
            {
                "project": project,
                "role": role,
                "progress": stats,
                "percent": round(100 * (stats["done"] + stats["skipped"]) / total)
                if total
                else 100,
                "is_staff": role in STAFF_ROLES,
                "gold": gold[project.id],
            }
        )
    return render(
        request,
        "frontend/home.html",
        {"rows": rows, "inbox": annotator_messages_for(user=request.user)},
    )


@login_required
@require_POST
def message_read(request: HttpRequest, message_id: int) -> HttpResponse:
    """The annotator marks one of their messages read; back to the home page."""
    try:
        annotator_message_mark_read(user=request.user, message_id=message_id)
    except NotFound:
        raise Http404("No such message.")
    return redirect(f"{reverse('frontend:home')}#inbox")


@login_required
def onboarding(request: HttpRequest) -> HttpResponse:
    """Consent first, then the profile survey; then back to where the annotator was going."""
    next_url = _safe_next(request)
    profile = services.profile_get_or_create(user=request.user)
    if profile.consented_at is None:
        form = ConsentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            services.profile_update(user=request.user, consent=True)
            return redirect(f"{reverse('frontend:onboarding')}?next={next_url}")
        return render(request, "frontend/consent.html", {"form": form, "next": next_url, "step": 1})
    return _profile_form(request, profile=profile, next_url=next_url, template_step=2)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    profile_row = services.profile_get_or_create(user=request.user)
    if profile_row.consented_at is None:
        return redirect(f"{reverse('frontend:onboarding')}?next={reverse('frontend:profile')}")
    return _profile_form(
        request, profile=profile_row, next_url=_safe_next(request, "/profile/"), template_step=0
    )


def _profile_form(
    request: HttpRequest, *, profile: AnnotatorProfile, next_url: str, template_step: int
) -> HttpResponse:
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                services.profile_update(user=request.user, **form.profile_fields())
            except BallotError as error:
                form.add_error(
                    None, f"{error.field}: {error.detail}" if error.field else error.detail
                )
            else:
                if template_step == 0:
                    from django.contrib import messages

                    messages.success(request, "Profile saved.")
                return redirect(next_url)
    else:
        form = ProfileForm(initial=ProfileForm.initial_from(profile))
    return render(
        request,
        "frontend/profile.html",
        {"form": form, "next": next_url, "step": template_step, "onboarding": template_step > 0},
    )


# --- labeling ------------------------------------------------------------------------------------


@login_required
@require_GET
def label(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _project_or_404(request, project_id)
    if project.require_profile and not selectors.profile_is_complete(user=request.user):
        return redirect(f"{reverse('frontend:onboarding')}?next={request.path}")
    questions = QuestionOut(selectors.question_list(project=project), many=True).data
    boot = {
        "project": {
            "id": project.id,
            "name": project.name,
            "show_gold_feedback": project.show_gold_feedback,
        },
        "questions": questions,
        "assignment": _assignment_payload(project=project, user=request.user),
        "urls": {
            "submit": reverse("frontend:label-submit", args=[project.id, 0]),
            "skip": reverse("frontend:label-skip", args=[project.id, 0]),
            "next": reverse("frontend:label-next", args=[project.id]),
            "ahead": reverse("frontend:label-ahead", args=[project.id, 0]),
            "home": reverse("frontend:home"),
        },
    }
    return render(
        request,
        "frontend/label.html",
        {"project": project, "boot": boot, "role": role, "kinds": {q["kind"] for q in questions}},
    )


@require_GET
@json_login_required
def label_next(request: HttpRequest, project_id: int) -> JsonResponse:
    project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
    return JsonResponse({"next": _assignment_payload(project=project, user=request.user)})


@require_POST
@json_login_required
def label_ahead(request: HttpRequest, project_id: int, assignment_id: int) -> JsonResponse:
    """Lease the item after ``assignment_id`` now, so submitting it costs one write, not two."""
    project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
    # Someone else's assignment (or one from another project) is as missing as a made-up id.
    assignment = selectors.assignment_get_for(user=request.user, assignment_id=assignment_id)
    if assignment.project_id != project.id:
        raise NotFound("No such assignment.")
    ahead = assignment_lease_ahead(
        project=project, annotator=request.user, current_id=assignment_id
    )
    return JsonResponse({"ahead": ahead.id if ahead else None})


@require_POST
@json_login_required
def label_submit(request: HttpRequest, project_id: int, assignment_id: int) -> JsonResponse:
    """Submit one assignment and lease the next item in the same round trip.

    The page leases the next item ahead (``label_ahead``) while the annotator
    works, so here ``assignment_claim_next`` usually just reads that live lease:
    one write and one round trip. A retry with the same Idempotency-Key replays
    the submission and returns the same next item again.
    """
    project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
    assignment = selectors.assignment_get_for(user=request.user, assignment_id=assignment_id)
    if assignment.project_id != project.id:
        raise NotFound("No such assignment.")
    # The API's JSON limits (NaN, depth, NUL, 64-bit integers, size) hold here too.
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is too large.", field="body") from None
    body = json_loads_strict(raw or b"{}")
    if not isinstance(body, dict):
        return JsonResponse(
            {
                "error": "invalid",
                "detail": "The body must be a JSON object.",
                "field": "body",
                "errors": [],
            },
            status=400,
        )
    annotation, created = services.annotation_submit(
        assignment_id=assignment.id,
        user=request.user,
        answers=body.get("answers"),
        time_spent_ms=body.get("time_spent_ms"),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    result: dict[str, Any] = {
        "annotation": annotation.id,
        "created": created,
        "replayed": not created,
    }
    if assignment.item.is_gold and project.show_gold_feedback:
        result["gold_answer"] = assignment.item.gold_answer
    return JsonResponse(
        {"submitted": result, "next": _assignment_payload(project=project, user=request.user)},
        status=201 if created else 200,
    )


@require_POST
@json_login_required
def label_skip(request: HttpRequest, project_id: int, assignment_id: int) -> JsonResponse:
    project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
    assignment = selectors.assignment_get_for(user=request.user, assignment_id=assignment_id)
    if assignment.project_id != project.id:
        raise NotFound("No such assignment.")
    services.assignment_skip(assignment=assignment)
    return JsonResponse(
        {"skipped": assignment.id, "next": _assignment_payload(project=project, user=request.user)}
    )


# --- curators ---------------------------------------------------------------------------------------


@login_required
@require_GET
def item_detail(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    try:
        item = selectors.item_get_for(user=request.user, project_id=project_id, item_id=item_id)
    except NotFound:
        raise Http404("No such item.")
    except Forbidden:
        raise PermissionDenied("This page is for the project's admins and curators.")
    project = item.project
    _, role = selectors.project_get_for(user=request.user, project_id=project.id)
    questions = selectors.question_list(project=project)
    annotations = selectors.item_annotation_list(item=item)
    responses = list(item.responses.all())
    return render(
        request,
        "frontend/item_detail.html",
        {
            "project": project,
            "item": item,
            "responses": [{"label": response_label(r.position), "response": r} for r in responses],
            "annotations": annotation_views(
                annotations=annotations,
                questions=questions,
                responses=responses,
                reveal_usernames=may_reveal_usernames(role),
            ),
        },
    )

"""Workspace pages for setting a project up: settings and questions, import, members.

Thin views: they parse the form, call one service and render. Every write goes
through ``annotation.services.projects`` (``project_setup_save``, ``membership_*``)
or ``items_import``; errors come back as the one ``BallotError`` shape and are shown
next to the field they name.

The label preview renders the real labeling page (``label.html`` and ``label.js``)
with a sample item and ``preview: true`` in its boot data, which turns submitting
into a no-op; there is no second renderer for questions.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_http_methods, require_POST

from annotation import selectors, services
from annotation.errors import BallotError, Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from annotation.parsers import json_loads_strict
from annotation.pseudonyms import may_reveal_usernames, pseudonym
from annotation.selectors import ADMIN_ONLY, STAFF_ROLES
from annotation.serializers import ItemForAnnotator
from annotation.services.imports import ON_CONFLICT, items_parse
from annotation.services.projects import (
    project_setup_save,
    question_config_validate,
)
from frontend.forms import MemberAddForm, ProjectSetupForm
from frontend.presentation import response_label
from frontend.templatetags.ballot_markdown import markdown_to_safe_html
from frontend.views import json_login_required

ROLE_CHOICES = [("annotator", "Annotator"), ("curator", "Curator"), ("admin", "Admin")]
PREVIEW_ITEMS = 5
PREVIEW_TEXT_CHARS = 400
PREVIEW_ERRORS = 100

# The labeling page's sample when the project has no item with two responses yet.
SAMPLE_ITEM = {
    "id": 0,
    "external_id": "sample",
    "conversation": [
        {"role": "user", "content": "How do I reverse a string in Python?"},
    ],
    "responses": [
        {
            "id": -1,
            "position": 0,
            "text": "Use slicing: `s[::-1]` returns a reversed copy.\n\n```python\n"
            's = "ballot"\nprint(s[::-1])  # tollab\n```',
        },
        {
            "id": -2,
            "position": 1,
            "text": "Python strings have a `.reverse()` method: `s.reverse()`.",
        },
    ],
}


def _project_or_404(request: HttpRequest, project_id: int, roles: tuple) -> tuple[Any, str]:
    try:
        return selectors.project_get_for(user=request.user, project_id=project_id, roles=roles)
    except NotFound:
        raise Http404("No such project.")
    except Forbidden:
        if roles == ADMIN_ONLY:
            raise PermissionDenied("This page is for the project's admins.")
        raise PermissionDenied("This page is for the project's admins and curators.")


# --- settings and questions ------------------------------------------------------------------


def _questions_from_post(request: HttpRequest) -> list:
    raw = request.POST.get("questions") or "[]"
    questions = json_loads_strict(raw.encode())
    if not isinstance(questions, list):
        raise ValidationFailed("questions must be a list.", field="questions")
    return questions


def _setup_page(request: HttpRequest, *, project: Any | None, role: str = "admin") -> HttpResponse:
    """The create and settings pages: one form for the project, one list of questions."""
    if project is None:
        questions: list = []
        form = ProjectSetupForm(request.POST or None)
    else:
        questions = [
            {
                "id": q.id,
                "kind": q.kind,
                "name": q.name,
                "prompt": q.prompt,
                "required": q.required,
                "config": q.config,
            }
            for q in selectors.question_list(project=project)
        ]
        form = ProjectSetupForm(
            request.POST or None, initial=ProjectSetupForm.initial_from(project)
        )
    errors: list[dict] = []
    status = 200
    if request.method == "POST":
        try:
            questions = _questions_from_post(request)
        except BallotError as error:
            errors = error.errors or [{"field": error.field, "detail": error.detail}]
        if form.is_valid() and not errors:
            try:
                saved = project_setup_save(
                    user=request.user,
                    project=project,
                    fields=form.project_fields(),
                    questions=questions,
                )
            except BallotError as error:
                status = error.status_code
                errors = error.errors or [{"field": error.field, "detail": error.detail}]
                for entry in errors:
                    if entry.get("field") in form.fields:
                        form.add_error(entry["field"], entry["detail"])
            else:
                messages.success(request, "Project saved." if project else "Project created.")
                return redirect(reverse("frontend:project-settings", args=[saved.id]))
        else:
            status = 400
    boot = {
        "questions": questions,
        "errors": [e for e in errors if str(e.get("field") or "").startswith("questions")],
        "urls": {
            "instructions_preview": reverse("frontend:instructions-preview"),
            "label_preview": reverse("frontend:label-preview"),
        },
        "project": project.id if project else None,
    }
    other_errors = [
        e
        for e in errors
        if not str(e.get("field") or "").startswith("questions")
        and e.get("field") not in form.fields
    ]
    return render(
        request,
        "frontend/workspace/setup.html" if project else "frontend/workspace/setup_new.html",
        {
            "project": project,
            "form": form,
            "boot": boot,
            "other_errors": other_errors,
            "section": "project-settings",
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    # Anyone signed in may create a project, as in the API (POST /api/v1/projects/);
    # the creator becomes its admin.
    return _setup_page(request, project=None)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = _project_or_404(request, project_id, ADMIN_ONLY)
    return _setup_page(request, project=project)


@require_POST
@json_login_required
def instructions_preview(request: HttpRequest) -> JsonResponse:
    """Instructions as annotators will see them: the home page's sanitising renderer."""
    return JsonResponse({"html": markdown_to_safe_html(request.POST.get("instructions", ""))})


def _preview_questions(questions: list) -> tuple[list[dict], list[int]]:
    """The questions the preview can show (as ``QuestionOut`` would), and the indexes it left out."""
    shown, left_out = [], []
    for index, spec in enumerate(questions):
        try:
            if not isinstance(spec, dict):
                raise ValidationFailed("Not a question.")
            config = question_config_validate(kind=spec.get("kind"), config=spec.get("config"))
        except BallotError:
            left_out.append(index)
            continue
        shown.append(
            {
                "id": spec.get("id") or f"preview-{index}",
                "kind": spec["kind"],
                "name": str(spec.get("name") or spec["kind"]),
                "prompt": str(spec.get("prompt") or ""),
                "position": index,
                "required": bool(spec.get("required", True)),
                "config": config,
            }
        )
    return shown, left_out


def _sample_item(request: HttpRequest, project_id: str) -> dict:
    if not project_id:
        return SAMPLE_ITEM
    try:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
    except BallotError:
        return SAMPLE_ITEM
    for item in selectors.item_list_for(project=project).order_by("id")[:20]:
        if len(item.responses.all()) >= 2:
            return dict(ItemForAnnotator(item).data)
    return SAMPLE_ITEM


@login_required
@require_POST
@xframe_options_sameorigin
def label_preview(request: HttpRequest) -> HttpResponse:
    """The real labeling page with a sample item and the unsaved questions; nothing is stored.

    Framed by the set-up page (hence same-origin framing). Questions whose config
    is invalid are left out here; the builder shows their errors.
    """
    try:
        questions = _questions_from_post(request)
    except BallotError:
        questions = []
    shown, left_out = _preview_questions(questions)
    item = _sample_item(request, request.POST.get("project", ""))
    project = {
        "id": 0,
        "name": request.POST.get("name") or "New project",
        "instructions": request.POST.get("instructions", ""),
    }
    boot = {
        "preview": True,
        "preview_left_out": left_out,
        "project": {"id": 0, "name": project["name"], "show_gold_feedback": False},
        "questions": shown,
        "assignment": {
            "id": 0,
            "project": 0,
            "status": "leased",
            "item": item,
            "progress": {"position": 1, "total": 1},
        },
        "urls": {"submit": "", "skip": "", "next": "", "ahead": "", "home": "#"},
    }
    return render(
        request,
        "frontend/label.html",
        {
            "project": project,
            "boot": boot,
            "role": "admin",
            "kinds": {q["kind"] for q in shown},
            "preview": True,
        },
    )


# --- import --------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET"])
def project_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = _project_or_404(request, project_id, STAFF_ROLES)
    boot = {
        "urls": {
            "preview": reverse("frontend:project-import-preview", args=[project.id]),
            "run": reverse("frontend:project-import-run", args=[project.id]),
        },
        "max_bytes": int(settings.BALLOT_IMPORT_MAX_BYTES),
    }
    return render(
        request,
        "frontend/workspace/import.html",
        {
            "project": project,
            "boot": boot,
            "on_conflict": ON_CONFLICT,
            "section": "project-import",
        },
    )


def _upload(request: HttpRequest) -> Any:
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationFailed("Choose a JSONL file to import.", field="file")
    limit = int(settings.BALLOT_IMPORT_MAX_BYTES)
    if upload.size > limit:
        raise PayloadTooLarge(f"The import is larger than {limit} bytes.", field="file")
    return upload


def _short(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= PREVIEW_TEXT_CHARS else text[:PREVIEW_TEXT_CHARS] + "…"


def _describe_answer(answer: dict) -> str:
    """One imported answer in words; responses are referred to by position, shown as A, B…"""
    name = str(answer.get("question", ""))
    if "chosen" in answer and "rejected" in answer:
        chosen, rejected = answer.get("chosen"), answer.get("rejected")
        if isinstance(chosen, int) and isinstance(rejected, int):
            relation = "=" if answer.get("tie") else "≻"
            return f"{name}: {response_label(chosen)} {relation} {response_label(rejected)}"
    if isinstance(answer.get("ranking"), list):
        groups = [
            "=".join(response_label(p) for p in (g if isinstance(g, list) else [g]))
            for g in answer["ranking"]
            if isinstance(g, (list, int))
        ]
        return f"{name}: {' ≻ '.join(groups)}"
    if isinstance(answer.get("ratings"), list):
        parts = [
            f"{response_label(r.get('response', 0))} {r.get('aspect')}={r.get('value')}"
            for r in answer["ratings"]
            if isinstance(r, dict) and isinstance(r.get("response", 0), int)
        ]
        return f"{name}: {', '.join(parts)}"
    return _short({k: v for k, v in answer.items()})


def _item_preview(item: Any) -> dict:
    prompt = next(
        (m.get("content") for m in reversed(item.conversation) if m.get("role") == "user"),
        item.conversation[-1].get("content") if item.conversation else "",
    )
    return {
        "line": item.line,
        "external_id": item.external_id,
        "prompt": _short(prompt),
        "turns": len(item.conversation),
        "responses": [_short(r.get("text", "")) for r in item.responses],
        "labels": [
            {
                "annotator": label.annotator or "imported",
                "source": label.source,
                "answers": [_describe_answer(a) for a in label.answers if isinstance(a, dict)],
            }
            for label in item.labels
        ],
        "tags": list(item.tags),
        "is_gold": item.is_gold,
    }


@require_POST
@json_login_required
def project_import_preview(request: HttpRequest, project_id: int) -> JsonResponse:
    """Parse the file without writing anything: the format, the first items and every bad line."""
    project, _ = selectors.project_get_for(
        user=request.user, project_id=project_id, roles=STAFF_ROLES
    )
    fmt = request.POST.get("format") or "auto"
    # Bad lines are collected, not raised, so the page can list them all before the
    # user decides whether to leave them out (skip_invalid) or fix the file.
    detected, items, count, invalid = items_parse(_upload(request), fmt=fmt, skip_invalid=True)
    return JsonResponse(
        {
            "format": detected,
            "lines": count,
            "items": len(items),
            "labels": sum(len(item.labels) for item in items),
            "preview": [_item_preview(item) for item in items[:PREVIEW_ITEMS]],
            "invalid_count": len(invalid),
            "invalid_lines": invalid[:PREVIEW_ERRORS],
        }
    )


@require_POST
@json_login_required
def project_import_run(request: HttpRequest, project_id: int) -> JsonResponse:
    project, _ = selectors.project_get_for(
        user=request.user, project_id=project_id, roles=STAFF_ROLES
    )
    skip_invalid = request.POST.get("skip_invalid") in ("1", "true", "on")
    result = services.items_import(
        project=project,
        lines=_upload(request),
        fmt=request.POST.get("format") or "auto",
        on_conflict=request.POST.get("on_conflict") or "error",
        skip_invalid=skip_invalid,
    )
    return JsonResponse(result.as_dict(), status=201 if result.created else 200)


# --- members -------------------------------------------------------------------------------------


def _member_rows(request: HttpRequest, project: Any, role: str) -> list[dict]:
    reveal = may_reveal_usernames(role)
    rows = []
    for membership in selectors.membership_list_for(user=request.user, project=project, role=role):
        own = membership.user_id == request.user.id
        rows.append(
            {
                "membership": membership,
                "pseudonym": pseudonym(membership.user_id, str(project.id)),
                # The one rule (annotation/pseudonyms.py): admins see usernames, curators
                # pseudonyms, and everyone their own name.
                "username": membership.user.username if reveal or own else None,
                "email": membership.user.email if reveal else None,
                "own": own,
            }
        )
    return rows


def _members_change(
    request: HttpRequest, *, project: Any, add_form: MemberAddForm, membership: Any | None
) -> Any:
    """Apply the posted action through the membership services; returns the membership touched."""
    action = request.POST.get("action")
    if action == "add":
        return services.membership_add(
            project=project,
            username=add_form.cleaned_data["user"],
            role=add_form.cleaned_data["role"],
        )
    if membership is None:
        raise ValidationFailed("action must be add, role or remove.", field="action")
    if action == "role":
        return services.membership_update(membership=membership, role=request.POST.get("role", ""))
    services.membership_remove(membership=membership)
    return membership


@login_required
@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = _project_or_404(request, project_id, STAFF_ROLES)
    is_admin = role in ADMIN_ONLY
    adding = request.POST.get("action") == "add"
    add_form = MemberAddForm(request.POST if adding else None)
    row_error: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("Only the project's admins change its members.")
        if adding and not add_form.is_valid():
            status = 400
        else:
            membership = None
            try:
                if request.POST.get("action") in ("role", "remove"):
                    membership = selectors.membership_get(
                        project=project, membership_id=request.POST.get("membership", "")
                    )
                membership = _members_change(
                    request, project=project, add_form=add_form, membership=membership
                )
            except BallotError as error:
                status = error.status_code
                if adding and error.field in ("username", "role"):
                    add_form.add_error(
                        "user" if error.field == "username" else "role", error.detail
                    )
                else:
                    row_error = {
                        "id": membership.id if membership else None,
                        "detail": error.detail,
                    }
            else:
                action = request.POST["action"]
                name = membership.user.username
                messages.success(
                    request,
                    {
                        "add": f"{name} added as {membership.role}.",
                        "role": f"{name} is now {membership.role}.",
                        "remove": f"{name} removed.",
                    }[action],
                )
                if action == "remove" and membership.user_id == request.user.id:
                    # Those who left the project can no longer open its pages.
                    return redirect(reverse("frontend:home"))
                return redirect(reverse("frontend:project-members", args=[project.id]))
    return render(
        request,
        "frontend/workspace/members.html",
        {
            "project": project,
            "rows": _member_rows(request, project, role),
            "is_admin": is_admin,
            "add_form": add_form,
            "row_error": row_error,
            "roles": ROLE_CHOICES,
            "section": "project-members",
        },
        status=status,
    )

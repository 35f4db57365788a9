"""The judges page: configure LM judges, test one on an item, launch labelling, read their record.

Admins create and change judges; curators (and admins) test them on an item and
launch ``label-ai`` jobs. Every action is a POST form with CSRF and works without
scripts; the module script only draws each judge's chart (agreement with human
labels and position consistency per version) from ``GET .../judges/<id>/stats/``.
The API key field is write-only: the page says whether a key is stored, never which.
"""

from __future__ import annotations

import json
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
from curation.judges import selectors as judge_selectors
from curation.judges import services as judge_services
from curation.services.jobs import job_create
from models_gpu.judges import DEFAULT_PROMPTS

TEXT_FIELDS = ("name", "backend", "base_url", "model", "api_key_env", "on_disagreement")
NUMBER_FIELDS = ("timeout_seconds", "max_retries", "concurrency", "max_requests_per_job")


def _project_or_404(request: HttpRequest, project_id: int, roles: tuple) -> tuple[Any, str]:
    try:
        return project_get_for(user=request.user, project_id=project_id, roles=roles)
    except NotFound:
        raise Http404("No such project.")
    except Forbidden:
        if roles == ADMIN_ONLY:
            raise PermissionDenied("Only the project's admins configure its judges.")
        raise PermissionDenied("This page is for the project's admins and curators.")


def _judge_or_404(request: HttpRequest, project_id: int, judge_id: int, roles: tuple):
    _project_or_404(request, project_id, roles)
    try:
        return judge_selectors.judge_get_for(
            user=request.user, project_id=project_id, judge_id=judge_id, roles=roles
        )
    except NotFound:
        raise Http404("No such judge.")


def _form_data(post, *, creating: bool) -> dict[str, Any]:
    """The posted fields as the service takes them: empty numbers left out, the key only if typed."""
    data: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        if key in post and (creating or key != "name"):
            data[key] = post.get(key, "").strip()
    for key in NUMBER_FIELDS:
        raw = post.get(key, "").strip()
        if raw:
            try:
                data[key] = float(raw) if key == "timeout_seconds" else int(raw)
            except ValueError:
                data[key] = raw  # the service names the field and the reason
        elif key == "max_requests_per_job" and key in post:
            data[key] = None
    if post.get("api_key"):
        data["api_key"] = post["api_key"]
    if post.get("clear_api_key") == "1":
        data["api_key"] = ""
    if "pairwise_prompt" in post:
        template = post.get("pairwise_prompt", "").replace("\r\n", "\n")
        data["prompts"] = {"pairwise": "" if template == DEFAULT_PROMPTS["pairwise"] else template}
    return data


def _render(
    request: HttpRequest,
    project,
    role: str,
    *,
    form: dict[str, Any] | None = None,
    error: BallotError | None = None,
    error_judge: int | None = None,
    tested: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    judges = list(judge_selectors.judge_list_for(project=project).prefetch_related("versions"))
    return render(
        request,
        "frontend/workspace/judges.html",
        {
            "project": project,
            "section": "judge-list",
            "is_admin": role in ADMIN_ONLY,
            "judges": judges,
            "form": form or {"backend": "openai", "on_disagreement": "tie", "concurrency": 4},
            "error": error,
            "error_judge": error_judge,
            "tested": tested,
            "default_pairwise": DEFAULT_PROMPTS["pairwise"],
            "api_base": f"/api/v1/projects/{project.id}/judges/",
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def judge_list(request: HttpRequest, project_id: int) -> HttpResponse:
    if request.method == "GET":
        project, role = _project_or_404(request, project_id, STAFF_ROLES)
        return _render(request, project, role)
    project, role = _project_or_404(request, project_id, ADMIN_ONLY)
    form = {key: request.POST.get(key, "") for key in (*TEXT_FIELDS, *NUMBER_FIELDS)}
    try:
        judge = judge_services.judge_create(
            project=project, user=request.user, data=_form_data(request.POST, creating=True)
        )
    except BallotError as error:
        return _render(request, project, role, form=form, error=error, status=400)
    messages.success(request, f"Judge created: {judge.name}")
    return redirect(reverse("frontend:judge-list", kwargs={"project_id": project_id}))


@login_required
@require_POST
def judge_edit(request: HttpRequest, project_id: int, judge_id: int) -> HttpResponse:
    judge = _judge_or_404(request, project_id, judge_id, ADMIN_ONLY)
    try:
        judge_services.judge_update(judge=judge, data=_form_data(request.POST, creating=False))
    except BallotError as error:
        project, role = _project_or_404(request, project_id, ADMIN_ONLY)
        return _render(request, project, role, error=error, error_judge=judge.id, status=400)
    messages.success(request, f"Judge saved: {judge.name}")
    return redirect(reverse("frontend:judge-list", kwargs={"project_id": project_id}))


@login_required
@require_POST
def judge_test(request: HttpRequest, project_id: int, judge_id: int) -> HttpResponse:
    judge = _judge_or_404(request, project_id, judge_id, STAFF_ROLES)
    project, role = _project_or_404(request, project_id, STAFF_ROLES)
    try:
        item = judge_selectors.judge_item_get(judge=judge, item_id=request.POST.get("item"))
        tested = judge_services.judge_test(judge=judge, item=item)
    except NotFound as error:
        error.field = "item"
        return _render(request, project, role, error=error, error_judge=judge.id, status=404)
    except BallotError as error:
        return _render(request, project, role, error=error, error_judge=judge.id, status=400)
    tested["name"] = judge.name
    for question in tested["questions"]:
        question["answer_text"] = json.dumps(question["answer"]) if question["answer"] else ""
    return _render(request, project, role, tested=tested)


@login_required
@require_POST
def judge_label(request: HttpRequest, project_id: int, judge_id: int) -> HttpResponse:
    """Enqueue a label-ai job and go to its page, which shows its progress.

    The request never judges anything itself: with a broker the job goes to a worker;
    without one it runs in a background thread of this process (``in_thread``), even
    where ``BALLOT_JOBS_IN_THREAD`` is off, since judging a project takes minutes and
    a web worker must answer at once.
    """
    judge = _judge_or_404(request, project_id, judge_id, STAFF_ROLES)
    project, role = _project_or_404(request, project_id, STAFF_ROLES)
    try:
        job = job_create(
            project=project,
            kind="label-ai",
            params={"judge": judge.id},
            user=request.user,
            in_thread=True,
        )
    except BallotError as error:
        return _render(request, project, role, error=error, error_judge=judge.id, status=400)
    messages.success(request, f"Labelling with {judge.name} queued (job {job.id}).")
    return redirect(
        reverse("frontend:job-detail", kwargs={"project_id": project_id, "job_id": job.id})
    )

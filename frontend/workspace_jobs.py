"""The jobs pages: the list with live progress and launch forms, and a results page per job.

The launch forms are built from the job-kind registry's descriptions, the same data
``GET /api/v1/job-kinds/`` serves, so a parameter declared on a kind appears here
with its type, bounds, default and help without touching this module. The form is
posted by ``jobs.js`` to the jobs API; the API's validation is the only one, and its
400 (``params.<key>``) is shown next to that key's input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.errors import NotFound
from annotation.pseudonyms import may_reveal_usernames
from curation import job_charts
from curation.jobs.registry import kinds_describe
from curation.pairs import SELECTION_FIELDS
from curation.reliability import job_reliability_rows
from curation.selectors import job_get_for
from frontend.workspace_quality import staff_project_or_404

if TYPE_CHECKING:
    from curation.models import Job

# Parameters that pick the annotations, shown folded under the kind's own settings.
SELECTION_PARAMS = frozenset(SELECTION_FIELDS)


def _input_of(param: dict[str, Any]) -> dict[str, Any]:
    """How one declared parameter is entered: the input kind and its prefilled value."""
    default = param["default"]
    kind = param["type"]
    if kind in ("integer", "number"):
        widget = "number"
        value = "" if default is None else str(default)
        step = "1" if kind == "integer" else "any"
    elif kind == "boolean":
        widget, value, step = "checkbox", bool(default), None
    elif kind == "string" and param["choices"]:
        widget, value, step = "select", default or "", None
    elif kind == "array":
        # A text list: comma-separated; choices, when declared, are listed in the help.
        widget, value, step = "list", ", ".join(default or []), None
    elif kind == "object":
        widget, value, step = "json", json.dumps(default or {}), None
    else:
        widget, value, step = "text", default or "", None
    return {
        **param,
        "widget": widget,
        "value": value,
        "step": step,
        "min": param["minimum"],
        # An open upper bound cannot be said by max=; the server refuses the bound itself.
        "max": None if param["exclusive_maximum"] else param["maximum"],
        "selection": param["name"] in SELECTION_PARAMS,
        "range": _range_text(param),
    }


def _range_text(param: dict[str, Any]) -> str:
    low, high = param["minimum"], param["maximum"]
    if low is None and high is None:
        return ""
    closing = ")" if param["exclusive_maximum"] else "]"
    return f"[{low}, {high}{closing}"


def launch_forms() -> list[dict[str, Any]]:
    """One form per available kind, its own parameters first and the selection folded after."""
    forms = []
    for kind in kinds_describe():
        if not kind["available"]:
            continue
        inputs = [_input_of(p) for p in kind["params"]]
        forms.append(
            {
                **kind,
                "own": [i for i in inputs if not i["selection"]],
                "selection": [i for i in inputs if i["selection"]],
            }
        )
    return forms


@login_required
@require_GET
def job_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = staff_project_or_404(request, project_id)
    reveal = may_reveal_usernames(role)
    return render(
        request,
        "frontend/workspace/jobs.html",
        {
            "project": project,
            "section": "job-list",
            "jobs": job_charts.job_rows_for_page(project=project, reveal_usernames=reveal),
            "forms": launch_forms(),
            "api_base": f"/api/v1/projects/{project.id}/jobs/",
            "reveal_usernames": reveal,
        },
    )


def _result_rows(job: Job) -> list[tuple[str, Any]]:
    """The plain numbers of a reward, embed or export result, labelled for the summary table."""
    result = job.result or {}
    labels = {
        "pairs": "Pairs",
        "heldout_accuracy": "Held-out accuracy",
        "texts": "Texts embedded",
        "dim": "Dimensions",
        "shards": "Shards",
        "version": "Dataset version",
        "items_considered": "Items considered",
        "artifact": "Artifact",
        "path": "Folder",
    }
    return [(label, result[key]) for key, label in labels.items() if key in result]


def _percent(share: Any) -> str | None:
    """``0.3814`` as ``"38.1"``; None for a missing or non-numeric value (older results)."""
    if isinstance(share, bool) or not isinstance(share, (int, float)):
        return None
    return f"{100 * share:.1f}"


@login_required
@require_GET
def job_detail(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project, role = staff_project_or_404(request, project_id)
    try:
        job = job_get_for(user=request.user, project_id=project.id, job_id=job_id)
    except NotFound:
        raise Http404("No such job.")
    reveal = may_reveal_usernames(role)
    result = job.result or {}
    scored = job.kind in job_charts.SCORED_KINDS and job.status == "succeeded"
    fitted = job.kind == "reliability" and job.status == "succeeded"
    context: dict[str, Any] = {
        "project": project,
        "section": "job-list",
        "job": job,
        "result": result,
        "created_by": job_charts.job_creator_for_page(job=job, reveal_usernames=reveal),
        "params": sorted((job.params or {}).items()),
        "percent": round(100 * (job.progress or 0.0)),
        "active": job.status in job_charts.ACTIVE,
        "scored": scored,
        "fitted": fitted,
        "reveal_usernames": reveal,
        "result_rows": _result_rows(job),
        "fold_accuracy": result.get("fold_accuracy") or [],
        "rows_by_split": sorted((result.get("rows") or {}).items())
        if isinstance(result.get("rows"), dict)
        else [],
        "api_job": f"/api/v1/projects/{project.id}/jobs/{job.id}/",
        "api_charts": f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/",
        "api_reliability": f"/api/v1/projects/{project.id}/jobs/{job.id}/reliability/",
    }
    if fitted:
        context["fits"] = result.get("fits") or []
        context["reliabilities"] = job_reliability_rows(job=job, reveal_usernames=reveal)
    if scored and job.kind == "suspects":
        context["suspects"] = job_charts.job_suspect_rows(job=job)
        context["noise_rate_percent"] = _percent(result.get("estimated_noise_rate"))
        context["expected_precision_percent"] = _percent(result.get("expected_precision"))
    elif scored:
        context["suspect_count"] = job_charts.job_suspect_count(job=job)
    return render(request, "frontend/workspace/jobs_detail.html", context)

"""The datasets pages: publish a version (an export job), the versions with their manifests, and a comparison.

The publish form is turned into export parameters and handed to the job
service; the service's validation is the only one, so its 400 (``params.<key>``)
is shown next to the form field of that key.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from annotation.errors import BallotError, NotFound, ValidationFailed
from annotation.services.projects import CATEGORICAL_PROFILE_FIELDS
from curation import charts
from curation.exports.formats import FORMATS
from curation.exports.writers import OUTPUTS
from curation.jobs.kinds.export import PROFILE_EXPORT_FIELDS
from curation.pairs.aggregation import AGGREGATIONS
from curation.services import job_create
from curation.services.dataset_compare import dataset_versions_compare
from frontend.workspace_quality import staff_project_or_404

SOURCES = ("human", "ai", "both")
FILTER_FIELDS = CATEGORICAL_PROFILE_FIELDS
DEFAULTS: dict[str, Any] = {
    "format": "trl_preference",
    "outputs": ["jsonl", "parquet"],
    "source": "human",
    "aggregation": "majority",
    "test_fraction": "0.1",
    "seed": "0",
}


def _number(raw: str) -> Any:
    """A form number as JSON would carry it; text that is no number is passed on for the service to refuse."""
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() and "." not in raw and "e" not in raw.lower() else value


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def export_params_from_form(form: Any) -> dict:
    """The export parameters the form describes; empty fields are left to the service's defaults."""
    params: dict[str, Any] = {
        "format": form.get("format", ""),
        "outputs": form.getlist("outputs"),
        "source": form.get("source", ""),
        "aggregation": form.get("aggregation", ""),
        "include_annotators": form.get("include_annotators") == "on",
    }
    if form.get("name", "").strip():
        params["name"] = form["name"].strip()
    for key in ("min_agreement", "test_fraction", "seed", "fifa_job"):
        raw = form.get(key, "").strip()
        if raw:
            params[key] = _number(raw)
    tags = _csv(form.get("tags", ""))
    if tags:
        params["tags"] = tags
    for key in ("created_after", "created_before"):
        raw = form.get(key, "").strip()
        if raw:
            params[key] = raw
    field = form.get("annotator_field", "").strip()
    values = _csv(form.get("annotator_values", ""))
    if field and values:
        params["annotator_filter"] = {field: values if len(values) > 1 else values[0]}
    elif values and not field:
        params["annotator_filter"] = {"": values}  # refused by the service, naming the field
    profile_fields = form.getlist("profile_fields")
    if profile_fields:
        params["profile_fields"] = profile_fields
    return params


# A service error names ``params.<key>`` (or ``params.annotator_filter.<field>``); the form
# shows it next to the input of that key.
def _form_field(error_field: str | None) -> str:
    name = (error_field or "").removeprefix("params.")
    if name.startswith("annotator_filter"):
        return "annotator_filter"
    return name or "form"


def _page(request: HttpRequest, project: Any, **extra: Any) -> dict:
    versions = charts.dataset_version_list(project=project)
    return {
        "project": project,
        "section": "dataset-list",
        "formats": FORMATS,
        "outputs": OUTPUTS,
        "sources": SOURCES,
        "aggregations": AGGREGATIONS,
        "filter_fields": FILTER_FIELDS,
        "profile_fields": PROFILE_EXPORT_FIELDS,
        "fifa_jobs": charts.fifa_jobs_succeeded(project=project),
        "versions": [_version_view(project, v) for v in versions],
        "active_jobs": charts.export_jobs_active(project=project),
        "values": DEFAULTS,
        "errors": {},
        **extra,
    }


def _version_view(project: Any, version: Any) -> dict:
    manifest = version.manifest or {}
    base = f"/api/v1/projects/{project.id}/datasets/{version.id}/files/"
    return {
        "version": version,
        "rows_by_split": manifest.get("rows_by_split") or version.row_counts or {},
        "rows_total": manifest.get("rows_total"),
        "files": [
            {
                "path": entry.get("path", ""),
                "bytes": entry.get("bytes"),
                "sha256": entry.get("sha256", ""),
                "url": base + entry.get("path", ""),
            }
            for entry in manifest.get("files") or []
        ],
        "manifest_url": base + "manifest.json",
        "filters": {
            k: v for k, v in (version.filters or {}).items() if v not in (None, [], {}, "")
        },
        "aggregation": _aggregation_text(manifest.get("aggregation") or version.aggregation),
    }


def _aggregation_text(aggregation: Any) -> str:
    if isinstance(aggregation, dict):
        policy, source = aggregation.get("policy", ""), aggregation.get("source", "")
        return f"{policy} ({source} labels)" if source else str(policy)
    return str(aggregation or "")


@login_required
@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    if request.method == "POST":
        params = export_params_from_form(request.POST)
        try:
            job = job_create(project=project, kind="export", params=params, user=request.user)
        except ValidationFailed as error:
            context = _page(
                request,
                project,
                values={**request.POST.dict(), "outputs": request.POST.getlist("outputs")},
                selected_profile_fields=request.POST.getlist("profile_fields"),
                errors={_form_field(error.field): error.detail},
            )
            return render(request, "frontend/workspace/datasets.html", context, status=400)
        except BallotError as error:
            context = _page(request, project, errors={"form": error.detail})
            return render(
                request, "frontend/workspace/datasets.html", context, status=error.status_code
            )
        url = reverse("frontend:dataset-list", kwargs={"project_id": project.id})
        return redirect(f"{url}?job={job.id}")
    return render(request, "frontend/workspace/datasets.html", _page(request, project))


@login_required
@require_GET
def dataset_compare(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    versions = charts.dataset_version_list(project=project)
    context: dict[str, Any] = {
        "project": project,
        "section": "dataset-list",
        "versions": versions,
        "a": request.GET.get("a", ""),
        "b": request.GET.get("b", ""),
        "result": None,
        "error": None,
    }
    status = 200
    if context["a"] or context["b"]:
        ids = [context["a"], context["b"]]
        # ASCII digits of bigint size: int() takes "²" and 10**30, the database takes neither.
        if not all(raw.isascii() and raw.isdigit() and len(raw) <= 18 for raw in ids):
            context["error"] = "Choose two versions to compare."
            status = 400
        else:
            a_id, b_id = int(ids[0]), int(ids[1])
            try:
                context["result"] = dataset_versions_compare(project=project, a_id=a_id, b_id=b_id)
            except (ValidationFailed, NotFound) as error:
                context["error"] = error.detail
                status = error.status_code
    return render(request, "frontend/workspace/datasets_compare.html", context, status=status)

"""The explanations page: what the feedback rewards, feature by feature, and for whom.

``/projects/{id}/explanations/`` shows one explanation (the latest, or ``?job=``):
the probe summary (the share of the preference signal the features explain), the
reconstruction error by epoch, and the features ranked by coefficient. Each feature
has a page with its examples side by side (the n-gram spans highlighted, rendered
by the template, so every text is escaped), its group-effect plot (drawn by
``explanations.js`` from the API), and the two actions: send its most active pairs
to the review queue, or export a dataset version without them. Both are POST forms
with CSRF; the page works without scripts except for the charts.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.errors import BallotError, NotFound
from curation.explanations.selectors import (
    explanation_alpha,
    explanation_latest,
    explanation_list_for,
    explanation_of_job,
    feature_description,
    feature_examples,
    feature_get,
    feature_list,
)
from curation.explanations.services import review_entries_from_feature
from curation.services.jobs import job_create
from frontend.workspace_quality import staff_project_or_404

DEFAULT_TOP = 20
EXPORT_FORMAT = "trl_preference"


def segments(text: str, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``text`` cut at the spans: ``[{text, side}]`` with side None outside any span."""
    out, cursor = [], 0
    for span in sorted(spans, key=lambda s: s["start"]):
        start, end = max(span["start"], cursor), min(span["end"], len(text))
        if start >= end:
            continue
        if start > cursor:
            out.append({"text": text[cursor:start], "side": None})
        out.append({"text": text[start:end], "side": span["side"]})
        cursor = end
    if cursor < len(text):
        out.append({"text": text[cursor:], "side": None})
    return out


def _number(raw: str | None, kind: type) -> Any:
    """A form value as ``kind``; the raw text when it is not one (the service names the field)."""
    if raw is None or raw.strip() == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        return raw


def _size(key: str) -> int:
    return int(key) if str(key).isdigit() else 0


def _explanation_or_404(project, job_id: int):
    try:
        return explanation_of_job(project=project, job_id=job_id)
    except NotFound:
        raise Http404("No such explanation.")


def _feature_or_404(explanation, index: int):
    try:
        return feature_get(explanation=explanation, index=index)
    except NotFound:
        raise Http404("No such feature.")


@login_required
@require_GET
def explanation_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    raw = request.GET.get("job", "")
    if raw.isdigit():
        explanation = _explanation_or_404(project, int(raw))
    else:
        explanation = explanation_latest(project=project)
    alpha = explanation_alpha(explanation) if explanation else 0.05
    features = (
        [
            {
                "row": f,
                "description": feature_description(f),
                "significant": f.p_bonferroni is not None and f.p_bonferroni < alpha,
            }
            for f in feature_list(explanation=explanation)
        ]
        if explanation
        else []
    )
    probes = explanation.probes if explanation else {}
    return render(
        request,
        "frontend/workspace/explanations.html",
        {
            "project": project,
            "section": "explanations",
            "explanation": explanation,
            "explanations": list(explanation_list_for(project=project)[:50]),
            "features": features,
            "probes": probes,
            "share": [
                {"size": size, "auc": (probes.get("auc_sparse") or {}).get(size), "share": value}
                for size, value in sorted(
                    (probes.get("share_explained") or {}).items(), key=lambda kv: _size(kv[0])
                )
            ],
            "confidence": round(100 * (1 - alpha)),
            "api_base": f"/api/v1/projects/{project.id}/explanations/",
        },
    )


def _feature_render(
    request: HttpRequest,
    project,
    explanation,
    feature,
    *,
    error: BallotError | None = None,
    status: int = 200,
) -> HttpResponse:
    examples = feature_examples(feature=feature)
    for example in examples:
        for side in ("left", "right"):
            example[side]["segments"] = segments(example[side]["text"], example[side]["spans"])
    alpha = explanation_alpha(explanation)
    return render(
        request,
        "frontend/workspace/explanation_feature.html",
        {
            "project": project,
            "section": "explanations",
            "explanation": explanation,
            "feature": feature,
            "description": feature_description(feature),
            "significant": feature.p_bonferroni is not None and feature.p_bonferroni < alpha,
            "examples": examples,
            "group_effects": feature.group_effects,
            "stats": feature.stats,
            "error": error,
            "form": request.POST if request.method == "POST" else {"top": DEFAULT_TOP},
            "api_url": (
                f"/api/v1/projects/{project.id}/explanations/{explanation.job_id}/features/"
                f"{feature.index}/groups/"
            ),
        },
        status=status,
    )


@login_required
@require_GET
def feature_page(request: HttpRequest, project_id: int, job_id: int, index: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    explanation = _explanation_or_404(project, job_id)
    feature = _feature_or_404(explanation, index)
    return _feature_render(request, project, explanation, feature)


@login_required
@require_POST
def feature_review(request: HttpRequest, project_id: int, job_id: int, index: int) -> HttpResponse:
    """Queue the items of the feature's most active pairs (top N or above a threshold)."""
    project, _ = staff_project_or_404(request, project_id)
    explanation = _explanation_or_404(project, job_id)
    feature = _feature_or_404(explanation, index)
    try:
        counts = review_entries_from_feature(
            project=project,
            job=explanation.job_id,
            feature=feature.index,
            top=_number(request.POST.get("top"), int),
            threshold=_number(request.POST.get("threshold"), float),
            user=request.user,
        )
    except BallotError as exc:
        return _feature_render(
            request, project, explanation, feature, error=exc, status=exc.status_code
        )
    messages.success(
        request,
        f"{counts['added']} item{'s' if counts['added'] != 1 else ''} added to the review "
        f"queue ({counts['pairs']} pairs selected, {counts['items'] - counts['added']} "
        "already open).",
    )
    return redirect(
        reverse("frontend:review-list", kwargs={"project_id": project.id}) + "?source=explanation"
    )


@login_required
@require_POST
def feature_export(request: HttpRequest, project_id: int, job_id: int, index: int) -> HttpResponse:
    """Start an export (a new dataset version) without the feature's most active pairs."""
    project, _ = staff_project_or_404(request, project_id)
    explanation = _explanation_or_404(project, job_id)
    feature = _feature_or_404(explanation, index)
    try:
        job = job_create(
            project=project,
            kind="export",
            params={
                "format": EXPORT_FORMAT,
                "explanation_job": explanation.job_id,
                "explanation_feature": feature.index,
                "explanation_top": _number(request.POST.get("top"), int),
                "explanation_threshold": _number(request.POST.get("threshold"), float),
            },
            user=request.user,
        )
    except BallotError as exc:
        return _feature_render(
            request, project, explanation, feature, error=exc, status=exc.status_code
        )
    messages.success(request, f"Export job {job.id} started without the feature's pairs.")
    return redirect(
        reverse("frontend:job-detail", kwargs={"project_id": project.id, "job_id": job.id})
    )

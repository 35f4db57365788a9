"""The routing page: the budget curve of each strategy against random, the per-item routes
with their reasons, and the action that sends the AI-routed items to the judge.

The curve is drawn by ``routing.js`` from the routing API (``curation.routing_api``),
the same JSON any client reads. The routes table and the send-to-judge form work
without scripts: the table is rendered here (filtered by route, first rows in rank
order), the action is a POST form with CSRF.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.errors import BallotError, ValidationFailed
from curation.judges.selectors import judge_list_for
from curation.routing import latest_routing_job, routing_decision_list, routing_summary
from curation.services.routing import routing_send_to_judge
from frontend.workspace_quality import staff_project_or_404

TABLE_ROWS = 200
ROUTES = ("human", "ai")


def _render(
    request: HttpRequest, project, *, error: BallotError | None = None, status: int = 200
) -> HttpResponse:
    job = latest_routing_job(project=project)
    route = request.GET.get("route", "")
    route = route if route in ROUTES else ""
    decisions = (
        list(routing_decision_list(job=job, route=route or None)[:TABLE_ROWS]) if job else []
    )
    summary = routing_summary(project=project, job=job)
    return render(
        request,
        "frontend/workspace/routing.html",
        {
            "project": project,
            "section": "routing",
            "api_base": f"/api/v1/projects/{project.id}/routing/",
            "job": job,
            "summary": summary,
            "decisions": decisions,
            "route": route,
            "table_rows": TABLE_ROWS,
            "error": error,
            "judges": list(judge_list_for(project=project)),
            "judge_value": request.POST.get("judge", "") if request.method == "POST" else "",
        },
        status=status,
    )


@login_required
@require_GET
def routing(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    return _render(request, project)


@login_required
@require_POST
def routing_send(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start labelling the last routing job's AI-routed items with the chosen judge."""
    project, _ = staff_project_or_404(request, project_id)
    job = latest_routing_job(project=project)
    try:
        if job is None:
            raise ValidationFailed("Run a routing job first.", field="job")
        judge = request.POST.get("judge", "").strip()
        labelling = routing_send_to_judge(
            job=job, user=request.user, judge=int(judge) if judge.isdigit() else judge
        )
    except BallotError as exc:
        return _render(request, project, error=exc, status=exc.status_code)
    messages.success(request, f"Labelling job {labelling.id} started on the AI-routed items.")
    return redirect(
        reverse("frontend:job-detail", kwargs={"project_id": project.id, "job_id": labelling.id})
    )

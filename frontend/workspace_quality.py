"""The quality page: agreement, label distributions, coverage, throughput, annotators and profiles.

The page is a shell: its module script fetches each chart's data from the
chart-data API (``curation.charts_api``), the same JSON any client can read, and
draws it through ``charts.js``. So the page costs one permission check and a
template, whatever the size of the project.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.errors import Forbidden, NotFound
from annotation.pseudonyms import may_reveal_usernames
from annotation.selectors import STAFF_ROLES


def staff_project_or_404(request: HttpRequest, project_id: int) -> tuple:
    """The project and role for an admin or curator; 404 for outsiders, the styled 403 for annotators."""
    try:
        return selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
    except NotFound:
        raise Http404("No such project.")
    except Forbidden:
        raise PermissionDenied("This page is for the project's admins and curators.")


@login_required
@require_GET
def quality(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = staff_project_or_404(request, project_id)
    return render(
        request,
        "frontend/workspace/quality.html",
        {
            "project": project,
            "section": "quality",
            "api_base": f"/api/v1/projects/{project.id}/quality/",
            "reveal_usernames": may_reveal_usernames(role),
        },
    )

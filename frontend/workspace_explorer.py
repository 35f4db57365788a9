"""The data explorer (/projects/{id}/items/): search, filter, sort, select and act on items.

Filters, sort and page are the URL's query string, so a view is shared by its address.
The page works without scripts: filters are a GET form, bulk actions a POST form that
first answers with a confirmation naming how many items the action will touch, then
applies it in one service call. ``explorer.js`` only adds "select all on this page".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors
from annotation.errors import BallotError, Forbidden, NotFound, ValidationFailed
from curation.explorer import (
    PAGE_SIZE,
    ExplorerQuery,
    SimilarUnavailable,
    explorer_bulk_apply,
    explorer_items,
    explorer_page,
    explorer_rows,
    item_similar_list,
    latest_scoring_job,
)
from frontend.workspace_quality import staff_project_or_404

if TYPE_CHECKING:
    from annotation.models import Project

BULK_LABELS = {
    "tag_add": "Add the tag",
    "tag_remove": "Remove the tag",
    "priority": "Set the priority to",
    "exclude": "Exclude from exports",
    "include": "Include in exports again",
    "review": "Send to review",
}
SORT_CHOICES = [
    ("id", "Oldest first"),
    ("-id", "Newest first"),
    ("title", "Title"),
    ("-annotations", "Most annotations"),
    ("annotations", "Fewest annotations"),
    ("agreement", "Lowest agreement"),
    ("-agreement", "Highest agreement"),
    ("-priority", "Highest priority"),
    ("-importance", "Most important (latest job)"),
    ("importance", "Least important (latest job)"),
]
COLUMNS = [
    ("title", "Item"),
    (None, "Responses"),
    ("annotations", "Annotations (human / AI)"),
    ("agreement", "Agreement"),
    (None, "Tags"),
    (None, "Gold"),
    ("priority", "Priority"),
    ("created", "Created"),
    ("importance", "Latest job"),
]


def _page_url(project: Project, params: dict[str, str]) -> str:
    base = reverse("frontend:item-list", kwargs={"project_id": project.id})
    return f"{base}?{urlencode(params)}" if params else base


def _headers(project: Project, query: ExplorerQuery) -> list[dict[str, Any]]:
    """Column headers; a sortable one links to the same view sorted by it (again: reversed)."""
    params = query.as_params()
    headers = []
    for key, label in COLUMNS:
        header: dict[str, Any] = {"label": label, "url": None, "state": "none"}
        if key is not None:
            current = query.sort.lstrip("-") == key
            descending = query.sort.startswith("-")
            target = f"-{key}" if current and not descending else key
            header["url"] = _page_url(project, {**params, "sort": target})
            if current:
                header["state"] = "descending" if descending else "ascending"
        headers.append(header)
    return headers


@login_required
@require_GET
def item_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = staff_project_or_404(request, project_id)
    error: BallotError | None = None
    try:
        query = ExplorerQuery.from_params(request.GET)
    except ValidationFailed as exc:
        error, query = exc, ExplorerQuery()
    items = explorer_items(project=project, query=query)
    raw = request.GET.get("page", "")
    number = int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 10 else 1
    page = explorer_page(queryset=items, number=max(number, 1), size=PAGE_SIZE)
    if not page.items and page.number > 1:
        # Past the end (a shared link after items went): the last page when the count is
        # exact, else the first.
        last = page.pages if page.count_exact else 1
        page = explorer_page(queryset=items, number=last, size=PAGE_SIZE)
    params = query.as_params()
    job = latest_scoring_job(project=project)
    return render(
        request,
        "frontend/workspace/explorer.html",
        {
            "project": project,
            "section": "item-list",
            "query": query,
            "params": params,
            "filter_fields": sorted(params.items()),
            "error": error,
            "page": page,
            "rows": explorer_rows(project=project, items=page.items),
            "headers": _headers(project, query),
            "previous_url": _page_url(project, {**params, "page": page.number - 1})
            if page.has_previous
            else None,
            "next_url": _page_url(project, {**params, "page": page.number + 1})
            if page.has_next
            else None,
            "bulk_labels": BULK_LABELS,
            "sort_choices": SORT_CHOICES,
            "job": job,
            "api_url": f"/api/v1/projects/{project.id}/explore/",
        },
        status=400 if error else 200,
    )


def _bulk_input(request: HttpRequest) -> dict[str, Any]:
    scope = request.POST.get("scope", "selected")
    if scope not in ("selected", "filter"):
        raise ValidationFailed("Choose the selected items or the whole filter.", field="scope")
    query = ExplorerQuery.from_params(request.POST)
    item_ids = None
    if scope == "selected":
        raw = request.POST.getlist("item")
        if not all(value.isascii() and value.isdigit() and len(value) < 19 for value in raw):
            raise ValidationFailed("Item ids are whole numbers.", field="item_ids")
        item_ids = [int(value) for value in raw]
    return {
        "action": request.POST.get("action", ""),
        "value": request.POST.get("value", ""),
        "item_ids": item_ids,
        "query": query if scope == "filter" else None,
        "scope": scope,
        "filter_params": query.as_params(),
    }


def _params_or_none(request: HttpRequest) -> dict[str, str]:
    try:
        return ExplorerQuery.from_params(request.POST).as_params()
    except ValidationFailed:
        return {}


@login_required
@require_POST
def item_bulk(request: HttpRequest, project_id: int) -> HttpResponse:
    """First POST: the confirmation with the count. Second POST (``confirm=1``): the action."""
    project, _ = staff_project_or_404(request, project_id)
    try:
        data = _bulk_input(request)
        count = explorer_bulk_apply(
            project=project,
            user=request.user,
            action=data["action"],
            value=data["value"],
            item_ids=data["item_ids"],
            query=data["query"],
            dry_run=request.POST.get("confirm") != "1",
        )
    except BallotError as error:
        messages.error(request, f"{error.field}: {error.detail}" if error.field else error.detail)
        return redirect(_page_url(project, _params_or_none(request)))
    label = BULK_LABELS[data["action"]]
    if request.POST.get("confirm") == "1":
        what = f"{label} {data['value']}".strip()
        messages.success(request, f"{what}: done for {count} item{'' if count == 1 else 's'}.")
        return redirect(_page_url(project, data["filter_params"]))
    return render(
        request,
        "frontend/workspace/explorer_confirm.html",
        {
            "project": project,
            "section": "item-list",
            "count": count,
            "label": label,
            "data": data,
            "back_url": _page_url(project, data["filter_params"]),
        },
    )


@login_required
@require_GET
def item_similar(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    try:
        item = selectors.item_get_for(user=request.user, project_id=project.id, item_id=item_id)
    except NotFound:
        raise Http404("No such item.")
    except Forbidden:
        raise PermissionDenied("This page is for the project's admins and curators.")
    note = ""
    similar = []
    try:
        similar = item_similar_list(project=project, item=item)
    except SimilarUnavailable as exc:
        note = str(exc)
    rows = explorer_rows(project=project, items=[s.item for s in similar])
    return render(
        request,
        "frontend/workspace/explorer_similar.html",
        {
            "project": project,
            "section": "item-list",
            "item": item,
            "rows": [
                {**row, "similarity": s.similarity} for row, s in zip(rows, similar, strict=True)
            ],
            "note": note,
        },
    )

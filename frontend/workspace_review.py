"""The review queue (/projects/{id}/review/) and one page per entry, where a curator resolves it.

The queue filters by source and state through the URL. Feeding it (agreement under a
threshold, a suspects job's flagged pairs) and messaging an annotator are plain POST
forms. Resolving is keyboard-first: ``review.js`` builds the decision and the label and
posts them to the review API, whose validation (the annotators' own) is the only one.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors
from annotation.errors import BallotError, NotFound, ValidationFailed
from annotation.pseudonyms import may_reveal_usernames, pseudonym
from annotation.serializers import QuestionOut
from annotation.services.feedback import annotator_messages_sent
from curation.review.selectors import (
    DECISIONS,
    SOURCES,
    adjudication_of,
    annotation_answers,
    item_aggregate,
    item_annotator_names,
    label_answers,
    review_counts,
    review_entry_get_for,
    review_entry_list_for,
    review_entry_next,
    review_filters_clean,
)
from curation.review.services import (
    review_entries_from_agreement,
    review_entries_from_job,
    review_message_send,
)
from curation.selectors import job_get_for
from frontend.presentation import annotation_views, response_label
from frontend.workspace_quality import staff_project_or_404

PAGE_SIZE = 50


def _queue_url(project_id: int, params: dict[str, str] | None = None) -> str:
    base = reverse("frontend:review-list", kwargs={"project_id": project_id})
    return f"{base}?{urlencode(params)}" if params else base


@login_required
@require_GET
def review_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    error = None
    try:
        source, state = review_filters_clean(request.GET)
    except ValidationFailed as exc:
        error, source, state = exc, "", "open"
    page = Paginator(
        review_entry_list_for(project=project, source=source, state=state), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    params = {k: v for k, v in (("source", source), ("state", state)) if v and v != "open"}
    counts = review_counts(project=project)
    return render(
        request,
        "frontend/workspace/review.html",
        {
            "project": project,
            "section": "review-list",
            "error": error,
            "source": source,
            "state": state,
            "sources": [
                {"value": value, "label": label, **counts.get(value, {})}
                for value, label in SOURCES
            ],
            "open_total": sum(c["open"] for c in counts.values()),
            "page": page,
            "previous_url": _queue_url(project.id, {**params, "page": page.previous_page_number()})
            if page.has_previous()
            else None,
            "next_url": _queue_url(project.id, {**params, "page": page.next_page_number()})
            if page.has_next()
            else None,
            "api_url": f"/api/v1/projects/{project.id}/review/",
        },
        status=400 if error else 200,
    )


def _flash_error(request: HttpRequest, error: BallotError) -> None:
    messages.error(request, f"{error.field}: {error.detail}" if error.field else error.detail)


def _count_text(added: int) -> str:
    return f"{added} item{'' if added == 1 else 's'} added to the review queue."


@login_required
@require_POST
def review_from_agreement(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    raw = request.POST.get("threshold", "").strip()
    try:
        try:
            threshold = float(raw)
        except ValueError:
            raise ValidationFailed("threshold must be a number.", field="threshold") from None
        added = review_entries_from_agreement(
            project=project, threshold=threshold, user=request.user
        )
    except BallotError as error:
        _flash_error(request, error)
        return redirect(_queue_url(project.id))
    messages.success(request, _count_text(added))
    return redirect(_queue_url(project.id, {"source": "agreement"}))


@login_required
@require_POST
def review_from_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project, _ = staff_project_or_404(request, project_id)
    try:
        job = job_get_for(user=request.user, project_id=project.id, job_id=job_id)
    except NotFound:
        raise Http404("No such job.")
    try:
        added = review_entries_from_job(job=job, user=request.user)
    except BallotError as error:
        _flash_error(request, error)
        return redirect(reverse("frontend:job-detail", args=[project.id, job.id]))
    messages.success(request, _count_text(added))
    return redirect(_queue_url(project.id, {"source": "suspects"}))


def _entry_or_404(request: HttpRequest, project_id: int, entry_id: int):
    staff_project_or_404(request, project_id)
    try:
        return review_entry_get_for(user=request.user, project_id=project_id, entry_id=entry_id)
    except NotFound:
        raise Http404("No such entry.")


def _score_rows(scores: dict[str, Any]) -> list[tuple[str, Any]]:
    """The plain figures of an entry's scores (lists of pairs and failures have their own tables)."""
    return [(k, v) for k, v in sorted(scores.items()) if not isinstance(v, (list, dict))]


def _label_lines(answers: list[dict[str, Any]], labels: dict[int, str]) -> list[str]:
    """An adjudicated label in words, responses by their letters."""
    name = lambda rid: labels.get(rid, "?")  # noqa: E731
    lines = []
    for answer in answers:
        question = answer["question"]
        if "chosen" in answer:
            sign = "=" if answer.get("tie") else ">"
            text = f"{name(answer['chosen'])} {sign} {name(answer['rejected'])}"
            if answer.get("strength"):
                text += f" (strength {answer['strength']})"
        elif "ranking" in answer:
            text = " > ".join(" = ".join(name(r) for r in group) for group in answer["ranking"])
        elif "ratings" in answer:
            text = ", ".join(
                f"{name(r['response'])} {r['aspect']} {r['value']:g}" for r in answer["ratings"]
            )
        else:
            text = (
                "; ".join(
                    f"{name(c['response'])} [{c['start']}, {c['end']}) "
                    f"{c['original_text']!r} → {c['corrected_text']!r}"
                    for c in answer["corrections"]
                )
                or "nothing to correct"
            )
        lines.append(f"{question}: {text}")
    return lines


@login_required
@require_GET
def review_detail(request: HttpRequest, project_id: int, entry_id: int) -> HttpResponse:
    entry, role = _entry_or_404(request, project_id, entry_id)
    item = entry.item
    project = item.project
    questions = selectors.question_list(project=project)
    annotations = list(selectors.item_annotation_list(item=item))
    responses = list(item.responses.all())
    labels = {r.id: response_label(r.position) for r in responses}
    reveal = may_reveal_usernames(role)
    views = annotation_views(
        annotations=annotations, questions=questions, responses=responses, reveal_usernames=reveal
    )
    adjudication = adjudication_of(entry=entry)
    following = review_entry_next(entry=entry)
    # Ranking questions show as ranked lists; their per-pair votes would only repeat them.
    aggregate = [row for row in item_aggregate(item=item) if row["kind"] != "ranking"]
    for row in aggregate:
        if row["kind"] == "ranked_list":
            row["text"] = "  >  ".join(labels.get(rid, "?") for rid in row["order"])
        elif row["tie"]:
            row["text"] = f"{labels.get(row['chosen'], '?')} = {labels.get(row['rejected'], '?')}"
        else:
            row["text"] = f"{labels.get(row['chosen'], '?')} > {labels.get(row['rejected'], '?')}"
    boot = {
        "entry": {"id": entry.id, "resolved": entry.resolved_at is not None},
        "questions": QuestionOut(questions, many=True).data,
        "responses": [
            {"id": r.id, "label": labels[r.id], "text": r.text, "position": r.position}
            for r in responses
        ],
        "annotations": [
            {
                "who": view["who"],
                "source": view["annotation"].source,
                "answers": annotation_answers(view["annotation"]),
            }
            for view in views
        ],
        "urls": {
            "resolve": f"/api/v1/projects/{project.id}/review/{entry.id}/resolve/",
            "next": reverse("frontend:review-detail", args=[project.id, following.id])
            if following
            else None,
            "queue": _queue_url(project.id),
        },
    }
    return render(
        request,
        "frontend/workspace/review_detail.html",
        {
            "project": project,
            "section": "review-list",
            "entry": entry,
            "item": item,
            "responses": [{"label": labels[r.id], "response": r} for r in responses],
            "annotations": views,
            "aggregate": aggregate,
            "score_rows": _score_rows(entry.scores or {}),
            "pairs": (entry.scores or {}).get("pairs") or [],
            "failures": (entry.scores or {}).get("failures") or [],
            "adjudication": adjudication,
            "adjudication_label": _label_lines(label_answers(adjudication), labels)
            if adjudication and adjudication.label
            else [],
            "decisions": DECISIONS,
            "annotator_names": item_annotator_names(item=item),
            "sent": [
                {
                    "to": pseudonym(m.annotator_id, str(project.id)),
                    "body": m.body,
                    "at": m.created_at,
                    "read": m.read_at is not None,
                }
                for m in annotator_messages_sent(item=item)
            ],
            "next_entry": following,
            "boot": boot,
        },
    )


@login_required
@require_POST
def review_message(request: HttpRequest, project_id: int, entry_id: int) -> HttpResponse:
    entry, _ = _entry_or_404(request, project_id, entry_id)
    try:
        review_message_send(
            entry=entry,
            sender=request.user,
            annotator=request.POST.get("annotator", ""),
            body=request.POST.get("body", ""),
        )
    except BallotError as error:
        _flash_error(request, error)
    else:
        messages.success(request, "Message sent.")
    return redirect(reverse("frontend:review-detail", args=[project_id, entry.id]) + "#messages")

"""Writes of the routing page: sending the items a routing job gave the judge to the judge."""

from __future__ import annotations

from typing import TYPE_CHECKING

from annotation.errors import ValidationFailed
from curation.models import Job, JobKind
from curation.routing import routing_ai_item_ids
from curation.services.jobs import job_create

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def routing_send_to_judge(*, job: Job, user: AbstractBaseUser | None, judge: object) -> Job:
    """Start a ``label-ai`` job on the items ``job`` routed to the judge.

    ``judge`` is passed to the labelling job as its ``judge`` parameter, which checks it;
    a 400 names ``judge`` when none is given and ``item_ids`` when nothing was routed to
    the judge.
    """
    if job.kind != JobKind.ROUTE or job.result is None:
        raise ValidationFailed("Pick a finished routing job.", field="job")
    if judge in (None, ""):
        raise ValidationFailed(
            "Choose the judge that labels the AI-routed items (configure one on the judges "
            "page first).",
            field="judge",
        )
    item_ids = routing_ai_item_ids(job=job)
    if not item_ids:
        raise ValidationFailed("The routing job sent no item to the judge.", field="item_ids")
    return job_create(
        project=job.project,
        kind=JobKind.LABEL_AI,
        params={"judge": judge, "item_ids": item_ids},
        user=user,
    )

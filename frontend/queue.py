"""Leasing one item ahead, so the next item is already reserved when the annotator submits.

``assignment_claim_next`` hands an annotator their live lease back, which is
right for reloads but means the next item can only be leased after the current
one is submitted: a second database write inside the submit round trip. The
labeling page instead asks for one lease *ahead* while the annotator is still
working; the submit request then only stores the answers, and the queue's own
``assignment_claim_next`` returns the lease taken ahead (the oldest live one).

This reuses the queue's claim step unchanged (same overlap, gold-rate and
priority rules); it only skips the "return my live lease" shortcut, and never
holds more than one lease beyond the current one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Project
from annotation.services.assignments import (
    CLAIM_ATTEMPTS,
    _claim_one,
    _wants_gold,
    leases_release_expired,
)


def _live_other(*, project: Project, annotator: AbstractBaseUser, current_id: int, now: datetime):
    return (
        Assignment.objects.filter(
            project=project,
            annotator=annotator,
            status=AssignmentStatus.ACTIVE,
            leased_until__gt=now,
        )
        .exclude(pk=current_id)
        .order_by("id")
        .first()
    )


def assignment_lease_ahead(
    *, project: Project, annotator: AbstractBaseUser, current_id: int, now: datetime | None = None
) -> Assignment | None:
    """Lease the item after ``current_id`` to ``annotator``, or return the one already leased ahead.

    Only while ``current_id`` is the annotator's own live lease in ``project``, so
    at most two leases are ever held. Returns ``None`` when nothing is left.
    """
    now = now or timezone.now()
    ahead = _live_other(project=project, annotator=annotator, current_id=current_id, now=now)
    if ahead is not None:
        return ahead
    holds_current = Assignment.objects.filter(
        pk=current_id,
        project=project,
        annotator=annotator,
        status=AssignmentStatus.ACTIVE,
        leased_until__gt=now,
    ).exists()
    if not holds_current:
        return None
    leases_release_expired(project=project, now=now)
    pools = [True, False] if _wants_gold(project=project, annotator=annotator) else [False]
    lease_until = now + timedelta(seconds=project.lease_seconds)
    for gold in pools:
        for _ in range(CLAIM_ATTEMPTS):
            outcome = _claim_one(
                project=project, annotator=annotator, gold=gold, lease_until=lease_until
            )
            if outcome == "empty":
                break
            if isinstance(outcome, Assignment):
                return outcome
            if outcome == "mine":
                ahead = _live_other(
                    project=project, annotator=annotator, current_id=current_id, now=now
                )
                if ahead is not None:
                    return ahead
    return None

"""The annotation queue: leasing items to annotators.

Invariants, all enforced under concurrency:
- an annotator never gets the same item twice (unique (item, annotator));
- a non-gold item never has more than the annotators it wants (``project.base_overlap``
  plus its ``overlap_extra``) in live leases plus submissions (``Item.slots_taken``,
  changed only by compare-and-set);
- items that asked for more votes (``overlap_extra`` > 0: adaptive overlap saw their votes
  disagree, or a curator sent them back) are served before fresh ones, the most asked
  first, then by priority and id;
- an expired lease gives its slot back; a skip gives its slot back;
- an annotator holds at most two live leases per project: the current one and
  the one the labeling page leases ahead. Claims for one (annotator, project)
  are serialised (``_hold_claim_lock``), so concurrent requests with one login
  cannot each lease a different item.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from annotation.errors import Conflict, NotFound
from annotation.models import Assignment, AssignmentStatus, Item, Membership, Project

CLAIM_ATTEMPTS = 8


def _locking(qs):
    # SKIP LOCKED lets concurrent claimants pass each other instead of queueing
    # on the same head-of-queue row; NO KEY keeps foreign-key inserts unblocked.
    # SQLite has no row locks: there the compare-and-set below is the guard.
    if connection.vendor == "postgresql":
        return qs.select_for_update(skip_locked=True, no_key=True)
    return qs


def _hold_claim_lock(*, project: Project, annotator: AbstractBaseUser) -> None:
    """Serialise leasing for one annotator in one project until the transaction ends.

    Precondition: inside ``transaction.atomic``. Without it, concurrent requests
    with one login all see "no live lease" and each claims a different item (SKIP
    LOCKED hands them different rows), hoarding the queue. On PostgreSQL this
    locks the annotator's Membership row (or, for a superuser who has none, the
    user row) FOR NO KEY UPDATE: other claimants of the same pair wait, anyone
    else passes, and inserts that reference the row are not blocked. On SQLite the
    transaction itself is the lock: it begins IMMEDIATE (settings), which takes
    the database's write lock up front, so writers already run one at a time.
    """
    if connection.vendor != "postgresql":
        return
    membership = list(
        Membership.objects.select_for_update(no_key=True)
        .filter(user_id=annotator.pk, project_id=project.pk)
        .values_list("pk", flat=True)
    )
    if not membership:
        list(
            get_user_model()
            .objects.select_for_update(no_key=True)
            .filter(pk=annotator.pk)
            .values_list("pk", flat=True)
        )


def slot_take(*, item_id: int, overlap: int) -> bool:
    """Compare-and-set one slot on a non-gold item; True when it was free.

    ``overlap`` is the project's base figure (``Project.base_overlap``); the item wants
    that plus its own ``overlap_extra`` (services.overlap).
    """
    return (
        Item.objects.filter(pk=item_id, slots_taken__lt=F("overlap_extra") + overlap).update(
            slots_taken=F("slots_taken") + 1,
            # Evaluated on the row's old values: full once this slot is the last.
            is_full=Case(
                When(slots_taken__gte=F("overlap_extra") + (overlap - 1), then=Value(True)),
                default=Value(False),
            ),
        )
        == 1
    )


def slots_free(*, item_id: int, count: int = 1) -> None:
    Item.objects.filter(pk=item_id, is_gold=False, slots_taken__gte=count).update(
        slots_taken=F("slots_taken") - count, is_full=False
    )


SWEEP_EVERY_SECONDS = 5


def _sweep_due(project_id: int, now: datetime) -> bool:
    # Sweeping costs a transaction; once every few seconds per process is plenty,
    # and a claim that finds the pool empty always sweeps before giving up.
    last = _last_sweep.get(project_id)
    if last is not None and (now - last).total_seconds() < SWEEP_EVERY_SECONDS:
        return False
    _last_sweep[project_id] = now
    return True


_last_sweep: dict[int, datetime] = {}


def leases_release_expired(
    *, project: Project, now: datetime | None = None, limit: int = 500
) -> int:
    """Mark leases past their time as expired and give their items' slots back.

    Precondition: runs in its own short transaction; rows another process is
    already expiring are skipped (SKIP LOCKED), so two sweeps never double-free.
    """
    now = now or timezone.now()
    with transaction.atomic():
        expired = list(
            _locking(
                Assignment.objects.filter(
                    project=project, status=AssignmentStatus.ACTIVE, leased_until__lt=now
                ).order_by("id")
            ).values_list("id", "item_id")[:limit]
        )
        if not expired:
            return 0
        ids = [row[0] for row in expired]
        changed = Assignment.objects.filter(id__in=ids, status=AssignmentStatus.ACTIVE).update(
            status=AssignmentStatus.EXPIRED, finished_at=now
        )
        freed: dict[int, int] = {}
        for _, item_id in expired:
            freed[item_id] = freed.get(item_id, 0) + 1
        for item_id, count in freed.items():
            slots_free(item_id=item_id, count=count)
        return changed


def _wants_gold(*, project: Project, annotator: AbstractBaseUser) -> bool:
    """Serve gold so the annotator's gold share tracks ``gold_rate`` exactly, not by chance."""
    if project.gold_rate <= 0:
        return False
    counts = Assignment.objects.filter(project=project, annotator=annotator).aggregate(
        total=Count("id"), gold=Count("id", filter=Q(item__is_gold=True))
    )
    # Floor, so the first items are regular ones and every 1/rate-th is gold.
    return counts["gold"] < math.floor(project.gold_rate * (counts["total"] + 1) + 1e-9)


def assignment_claim_next(
    *, project: Project, annotator: AbstractBaseUser, now: datetime | None = None
) -> Assignment | None:
    """Lease the next item to ``annotator``, or return ``None`` when nothing is left for them.

    An annotator holding a live lease in this project gets that one back, so a
    reload never burns a slot. Otherwise items that asked for more votes come first, then
    items are taken by priority (highest
    first), then id. Each claim locks one item row with SKIP LOCKED and takes a
    slot by compare-and-set, in a transaction that holds no network or disk work.
    """
    now = now or timezone.now()
    # Read without a lock first: a reload or a submit with a lease ahead (the
    # common case) costs one query. Only a claim pays for the lock.
    current = _live_lease(project=project, annotator=annotator, now=now)
    if current is not None:
        return current
    with transaction.atomic():
        _hold_claim_lock(project=project, annotator=annotator)
        # Someone else's request for this annotator may have leased while we waited.
        current = _live_lease(project=project, annotator=annotator, now=now)
        if current is not None:
            return current
        return _claim_new(project=project, annotator=annotator, now=now)


def _live_lease(*, project: Project, annotator: AbstractBaseUser, now: datetime):
    return (
        Assignment.objects.select_related("item")
        .filter(
            project=project,
            annotator=annotator,
            status=AssignmentStatus.ACTIVE,
            leased_until__gt=now,
        )
        .order_by("id")
        .first()
    )


def _claim_new(*, project: Project, annotator: AbstractBaseUser, now: datetime):
    swept = _sweep_due(project.id, now) and leases_release_expired(project=project, now=now) >= 0
    pools = [True, False] if _wants_gold(project=project, annotator=annotator) else [False]
    lease_until = now + timedelta(seconds=project.lease_seconds)
    found = _claim_from(project=project, annotator=annotator, pools=pools, lease_until=lease_until)
    if found is None and not swept and leases_release_expired(project=project, now=now):
        found = _claim_from(
            project=project, annotator=annotator, pools=pools, lease_until=lease_until
        )
    return found


def _claim_from(
    *, project: Project, annotator: AbstractBaseUser, pools: list[bool], lease_until: datetime
):
    for gold in pools:
        for _ in range(CLAIM_ATTEMPTS):
            outcome = _claim_one(
                project=project, annotator=annotator, gold=gold, lease_until=lease_until
            )
            if outcome == "empty":
                break
            if isinstance(outcome, Assignment):
                return outcome
            # "raced": someone took the slot or this annotator claimed in another tab; try again.
            if outcome == "mine":
                mine = (
                    Assignment.objects.select_related("item")
                    .filter(project=project, annotator=annotator, status=AssignmentStatus.ACTIVE)
                    .order_by("id")
                    .first()
                )
                if mine is not None:
                    return mine
    return None


def _claim_one(*, project: Project, annotator: AbstractBaseUser, gold: bool, lease_until: datetime):
    seen = Assignment.objects.filter(project=project, annotator=annotator).values("item_id")
    candidates = Item.objects.filter(project=project, is_gold=gold).exclude(id__in=seen)
    if not gold:
        candidates = candidates.filter(is_full=False)
    # Items that asked for more votes (disagreement, a curator) before fresh ones.
    ordered = candidates.order_by("-overlap_extra", "-priority", "id").only(
        "id", "external_id", "conversation", "is_gold"
    )
    try:
        with transaction.atomic():
            item = _locking(ordered).first()
            if item is None and connection.vendor == "postgresql":
                # SKIP LOCKED also passes over an item that a submit or another claim holds
                # for a moment; were it the last with a slot for this annotator, they would
                # be told there is nothing left. Wait for it instead: this only happens at
                # the end of the queue, never on the hot path.
                item = ordered.select_for_update(no_key=True).first()
            if item is None:
                return "empty"
            if not gold and not slot_take(item_id=item.pk, overlap=project.base_overlap):
                return "raced"
            return Assignment.objects.create(
                project=project, item=item, annotator=annotator, leased_until=lease_until
            )
    except IntegrityError:
        # Unique (item, annotator): this annotator claimed it concurrently (two tabs).
        return "mine"


@transaction.atomic
def assignment_skip(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Record a skip. The item goes back to the pool for others, never to this annotator."""
    now = now or timezone.now()
    locked = (
        Assignment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("item")
        .get(pk=assignment.pk)
    )
    if locked.status == AssignmentStatus.SKIPPED:
        return locked
    if locked.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This assignment was already submitted.")
    if locked.status == AssignmentStatus.ACTIVE and not locked.item.is_gold:
        slots_free(item_id=locked.item_id)
    locked.status = AssignmentStatus.SKIPPED
    locked.finished_at = now
    locked.save(update_fields=["status", "finished_at"])
    return locked


def assignment_reacquire(*, assignment: Assignment, now: datetime) -> bool:
    """Try to take a slot again for an expired lease. Caller holds the assignment's row lock."""
    if assignment.item.is_gold:
        ok = True
    else:
        ok = slot_take(item_id=assignment.item_id, overlap=assignment.project.base_overlap)
    if ok:
        assignment.status = AssignmentStatus.ACTIVE
        assignment.leased_until = now + timedelta(seconds=assignment.project.lease_seconds)
    return ok


def assignment_for_user(*, assignment_id: int, user: AbstractBaseUser) -> Assignment:
    assignment = Assignment.objects.filter(pk=assignment_id, annotator=user).first()
    if assignment is None:
        raise NotFound("No such assignment.")
    return assignment


# --- leasing one item ahead ---------------------------------------------------------
# The labeling page leases the next item while the annotator still works on the
# current one, so a submit only stores answers and the next item is on screen at
# once. Same overlap, gold-rate and priority rules as ``assignment_claim_next``;
# never more than one lease beyond the current one.


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


def assignment_claim_ahead(
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
    with transaction.atomic():
        _hold_claim_lock(project=project, annotator=annotator)
        return _claim_ahead_locked(
            project=project, annotator=annotator, current_id=current_id, now=now
        )


def _claim_ahead_locked(
    *, project: Project, annotator: AbstractBaseUser, current_id: int, now: datetime
) -> Assignment | None:
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
    if _sweep_due(project.id, now):
        leases_release_expired(project=project, now=now)
    pools = [True, False] if _wants_gold(project=project, annotator=annotator) else [False]
    lease_until = now + timedelta(seconds=project.lease_seconds)
    found = _claim_from(project=project, annotator=annotator, pools=pools, lease_until=lease_until)
    if found is not None and found.pk == current_id:
        return None
    return found

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

import json
import math
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from annotation.errors import Conflict, NotFound
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Item,
    Project,
    Response,
)

CLAIM_ATTEMPTS = 8


def deadlock_detected(exc: OperationalError) -> bool:
    """PostgreSQL broke a lock cycle by rolling this transaction back (SQLSTATE 40P01)."""
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


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
    LOCKED hands them different rows), hoarding the queue. On PostgreSQL this is a
    transaction-level advisory lock on (project, annotator): other claimants of the
    same pair wait, anyone else passes, and unlike a row lock it writes nothing (no
    tuple header, no WAL), which matters when every claim takes it. On SQLite the
    transaction itself is the lock: it begins IMMEDIATE (settings), which takes the
    database's write lock up front, so writers already run one at a time.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # The two-int4 key space: (project, user). A project id past 2**31 shares a key
        # with another project's; that only makes two claims wait for each other.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [project.pk % CLAIM_LOCK_KEY_SPACE, annotator.pk % CLAIM_LOCK_KEY_SPACE],
        )


CLAIM_LOCK_KEY_SPACE = 2**31 - 1


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


def _sweep_is_due(project_id: int, now: datetime) -> bool:
    # Sweeping costs a transaction; once every few seconds per process is plenty,
    # and a claim that finds the pool empty always sweeps before giving up.
    last = _last_sweep.get(project_id)
    return last is None or (now - last).total_seconds() >= SWEEP_EVERY_SECONDS


def _sweep_due(project_id: int, now: datetime) -> bool:
    """``_sweep_is_due``, and if so the sweep is counted as done from ``now``."""
    if not _sweep_is_due(project_id, now):
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
    items are taken by priority (highest first), then id. Each claim locks one item row
    with SKIP LOCKED and takes a slot by compare-and-set, in a transaction that holds no
    network or disk work.

    On PostgreSQL the common case is two statements: the per-annotator lock, then one
    statement that returns the live lease or leases a new item, with the item and its
    responses (``_claim_in_one_statement``). When that statement finds nothing (the queue's
    end, an item held for a moment by someone else, a lost compare-and-set) the claim goes
    on with the general path below, which waits for held rows and sweeps expired leases
    before answering that nothing is left.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                _hold_claim_lock(project=project, annotator=annotator)
                if _sweep_due(project.id, now):
                    leases_release_expired(project=project, now=now)
                found = _claim_in_one_statement(project=project, annotator=annotator, now=now)
                if found is not None:
                    return found
                return _claim_new(project=project, annotator=annotator, now=now)
        except IntegrityError:
            # Unique (item, annotator) from a lease made outside the claim lock (an admin,
            # a script): the general path below sorts it out.
            pass
        except OperationalError as exc:
            # This claim's sweep waited on an item that the annotator's own submit (another
            # tab) holds while that submit waits for this claim's lock; PostgreSQL rolled
            # this side back, its sweep too. The general path below retries in a new
            # transaction, and sweeps again.
            if not deadlock_detected(exc):
                raise
            _last_sweep.pop(project.id, None)
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


def assignment_claim_quick(
    *, project: Project, annotator: AbstractBaseUser, now: datetime
) -> Assignment | None:
    """The claim's common case inside the caller's transaction, or ``None``.

    Precondition: PostgreSQL, inside a transaction that holds no lock a claim of this
    annotator could wait for (``annotation_submit_and_claim_next``: its submitted item
    and assignment are this annotator's own, which no claim of theirs touches). Takes
    the per-annotator lock, then runs the one statement; it never waits for a row lock.
    ``None`` when that leased nothing or a sweep of expired leases is due: the caller
    then runs ``assignment_claim_next`` after its commit, whose general path may wait
    for rows and sweeps (so the sweep is left due here).
    """
    if _sweep_is_due(project.id, now):
        return None
    _hold_claim_lock(project=project, annotator=annotator)
    return _claim_in_one_statement(project=project, annotator=annotator, now=now)


# The claim as one statement (PostgreSQL). Its snapshot is taken after the caller's
# per-annotator lock, so ``live`` sees every lease an earlier claimant of this annotator
# committed. ``candidate`` locks the head of the queue with SKIP LOCKED (and is materialised,
# so it runs once); ``taken`` is the slot's compare-and-set on the row's newest version
# (READ COMMITTED re-reads a row that changed since the snapshot); gold items take no slot.
# When the head row changed so that it no longer qualifies, or every candidate is locked,
# nothing comes back and the caller takes the general path.
_CLAIM_SQL = """
WITH live AS (
    SELECT a.id FROM annotation_assignment a
    WHERE a.project_id = %(project)s AND a.annotator_id = %(annotator)s
      AND a.status = 'active' AND a.leased_until > %(now)s
    ORDER BY a.id
    LIMIT 1
),{gold_cte}
candidate AS MATERIALIZED (
    SELECT i.id, i.is_gold FROM annotation_item i
    WHERE i.project_id = %(project)s AND {pool}
      AND NOT EXISTS (SELECT 1 FROM live)
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment mine
          WHERE mine.item_id = i.id AND mine.annotator_id = %(annotator)s
      )
    ORDER BY {gold_first}i.overlap_extra DESC, i.priority DESC, i.id
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED
),
taken AS (
    UPDATE annotation_item i
    SET slots_taken = i.slots_taken + 1,
        is_full = i.slots_taken + 1 >= i.overlap_extra + %(overlap)s
    FROM candidate c
    WHERE i.id = c.id AND NOT c.is_gold AND i.slots_taken < i.overlap_extra + %(overlap)s
    RETURNING i.id
),
chosen AS (
    SELECT id FROM taken
    UNION ALL
    SELECT id FROM candidate WHERE is_gold
),
inserted AS (
    INSERT INTO annotation_assignment
        (project_id, item_id, annotator_id, status, leased_until, created_at)
    SELECT %(project)s, id, %(annotator)s, 'active', %(lease_until)s, %(now)s FROM chosen
    RETURNING id, item_id, status, leased_until, created_at, finished_at
),
picked AS (
    SELECT * FROM inserted
    UNION ALL
    SELECT a.id, a.item_id, a.status, a.leased_until, a.created_at, a.finished_at
    FROM annotation_assignment a JOIN live ON live.id = a.id
)
SELECT p.id, p.item_id, p.status, p.leased_until, p.created_at, p.finished_at,
       i.external_id, i.conversation, i.is_gold,
       (SELECT coalesce(
                   json_agg(json_build_object('id', r.id, 'position', r.position, 'text', r.text)
                            ORDER BY r.position),
                   '[]'::json)
        FROM annotation_response r WHERE r.item_id = p.item_id)
FROM picked p JOIN annotation_item i ON i.id = p.item_id
"""
_GOLD_CTE = """
gold AS (
    SELECT count(*) FILTER (WHERE gi.is_gold)
           < floor(%(gold_rate)s * (count(*) + 1) + 1e-9) AS wanted
    FROM annotation_assignment ga JOIN annotation_item gi ON gi.id = ga.item_id
    WHERE ga.project_id = %(project)s AND ga.annotator_id = %(annotator)s
),"""
_REGULAR_POOL = "NOT i.is_gold AND NOT i.is_full"
# Gold first when the annotator's gold share is below the rate (as ``_wants_gold``), else
# regular items only; regular first-come order after that.
_MIXED_POOL = "((i.is_gold AND (SELECT wanted FROM gold)) OR (NOT i.is_gold AND NOT i.is_full))"
_CLAIM_SQL_REGULAR = _CLAIM_SQL.format(gold_cte="", pool=_REGULAR_POOL, gold_first="")
_CLAIM_SQL_MIXED = _CLAIM_SQL.format(
    gold_cte=_GOLD_CTE, pool=_MIXED_POOL, gold_first="i.is_gold DESC, "
)


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _claim_in_one_statement(
    *, project: Project, annotator: AbstractBaseUser, now: datetime
) -> Assignment | None:
    """The live lease or a newly leased item, with the item and its responses, in one statement.

    Preconditions: PostgreSQL, inside the transaction that holds ``_hold_claim_lock`` for
    (``project``, ``annotator``), taken in an earlier statement. Returns ``None`` when the
    statement leased nothing (see ``_CLAIM_SQL``). The item carries only the fields the
    queue reads (the rest load on access) and its responses are already prefetched, so
    ``selectors.assignment_responses_prefetch`` costs no query.
    """
    params = {
        "project": project.pk,
        "annotator": annotator.pk,
        "now": now,
        "lease_until": now + timedelta(seconds=project.lease_seconds),
        "overlap": project.base_overlap,
        "gold_rate": float(project.gold_rate),
    }
    sql = _CLAIM_SQL_MIXED if project.gold_rate > 0 else _CLAIM_SQL_REGULAR
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    (pk, item_id, status, leased_until, created_at, finished_at) = row[:6]
    external_id, conversation, is_gold, responses = row[6:]
    item = Item.from_db(
        connection.alias,
        ["id", "project_id", "external_id", "conversation", "is_gold"],
        [item_id, project.pk, external_id, _json(conversation), is_gold],
    )
    related = item.responses.all()
    related._result_cache = [
        Response(id=r["id"], item_id=item_id, position=r["position"], text=r["text"])
        for r in _json(responses)
    ]
    related._prefetch_done = True
    item._prefetched_objects_cache = {"responses": related}
    assignment = Assignment.from_db(
        connection.alias,
        [
            "id",
            "project_id",
            "item_id",
            "annotator_id",
            "status",
            "leased_until",
            "created_at",
            "finished_at",
        ],
        [pk, project.pk, item_id, annotator.pk, status, leased_until, created_at, finished_at],
    )
    assignment.item, assignment.project, assignment.annotator = item, project, annotator
    return assignment


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

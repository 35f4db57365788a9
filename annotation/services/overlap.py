"""How many annotators an item wants: adaptive overlap and curator requests for more votes.

An item wants ``project.base_overlap + item.overlap_extra`` annotators (gold items are served
to everyone and want nothing). ``Item.slots_taken`` counts live leases plus submissions and
``Item.is_full`` is ``slots_taken >= wanted``; every writer below keeps that in the same
UPDATE. ``overlap_extra`` only ever grows, so a slot taken under an older figure is never
taken away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

from django.db import transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import Greatest, Least

from annotation.errors import ValidationFailed
from annotation.models import Annotation, Item, Project, Question, Source
from annotation.quality_summary import PAIRWISE, RATING, Vote
from annotation.services.quality import ItemVotes, pairwise_vote_choice
from models_gpu.overlap import needs_another_vote

# The most annotators one item may want, as for ``Project.overlap``.
MAX_WANTED = 100
CHUNK = 2000


def request_more_votes(
    item_ids: Iterable[int], *, votes: int = 1, priority: float | None = None
) -> int:
    """Ask for ``votes`` more annotators on each non-gold item of ``item_ids``; reopen them.

    The new figure counts from what the item already has or is promised (its wanted count,
    or its taken slots when more than that), so "one more" is one more vote than are in or
    leased now, capped at ``MAX_WANTED``. ``priority``, when given, raises the items'
    priority to at least that value (never lowers it). Returns how many items changed.

    One UPDATE per project, atomic; each row's new figures are computed from its own
    values inside the UPDATE, so concurrent claims and submits (which change
    ``slots_taken`` under the same row lock) cannot be lost. Gold items are left alone.
    """
    if not isinstance(votes, int) or isinstance(votes, bool) or not 1 <= votes <= MAX_WANTED:
        raise ValidationFailed(f"votes must be an integer from 1 to {MAX_WANTED}.", field="votes")
    if priority is not None and not isinstance(priority, (int, float)):
        raise ValidationFailed("priority must be a number.", field="priority")
    ids = sorted({int(item_id) for item_id in item_ids})
    if not ids:
        return 0
    changed = 0
    with transaction.atomic():
        project_ids = (
            Item.objects.filter(pk__in=ids, is_gold=False)
            .values_list("project_id", flat=True)
            .distinct()
        )
        for project in Project.objects.filter(pk__in=list(project_ids)).order_by("pk"):
            base = project.base_overlap
            wanted = Least(
                Value(MAX_WANTED),
                Greatest(F("overlap_extra") + base, F("slots_taken")) + votes,
            )
            updates: dict = {
                "overlap_extra": Greatest(Value(0), wanted - base),
                "is_full": Case(When(slots_taken__gte=wanted, then=Value(True)), default=False),
            }
            if priority is not None:
                updates["priority"] = Greatest(F("priority"), Value(float(priority)))
            changed += Item.objects.filter(pk__in=ids, project=project, is_gold=False).update(
                **updates
            )
    return changed


def _vote_units(*, votes: Iterable[Vote], questions: Sequence[Question]) -> list[dict]:
    """The item's human votes per unit the rule judges: a pairwise question, a rating cell."""
    by_id = {q.id: q for q in questions}
    units: dict[Hashable, dict] = {}
    for vote in votes:
        if vote.kind == PAIRWISE:
            unit = units.setdefault(
                ("pairwise", vote.question_id),
                {"counts": Counter(), "ordinal": False, "scale": None},
            )
            unit["counts"][pairwise_vote_choice(vote)] += 1
        elif vote.kind == RATING and vote.question_id in by_id:
            key = ("rating", vote.question_id, vote.unit_a, vote.aspect)
            unit = units.get(key)
            if unit is None:
                unit = units[key] = {
                    "counts": Counter(),
                    "ordinal": True,
                    "scale": _rating_scale(by_id[vote.question_id], vote.aspect),
                }
            unit["counts"][vote.number] += 1
    return list(units.values())


def _rating_scale(question: Question, aspect: str) -> tuple[float, float]:
    config = question.config
    scale = config.get("scale") or {"min": 1, "max": 5}
    for entry in config.get("aspects", []):
        if entry.get("name") == aspect and entry.get("scale"):
            scale = entry["scale"]
    return float(scale["min"]), float(scale["max"])


def item_overlap_wanted(
    *,
    project: Project,
    questions: Sequence[Question],
    overlap_extra: int,
    item_votes: ItemVotes,
) -> int | None:
    """The adaptive-overlap rule after a submission: the item's new wanted count, or None.

    No query: ``item_votes`` is the item's read under its row lock, shared with the
    quality summaries (``annotation.services.item_submission``, which stores the figure
    and states the lock's preconditions); its ``human_annotations`` must be counted.
    ``overlap_extra`` is the item's stored figure, read under the same lock. Fixed-overlap
    projects return None; the caller leaves gold items out.

    The rule (``models_gpu.overlap.needs_another_vote``) runs per pairwise question (a tie
    is its own label) and per rating cell (response and aspect, by spread on its scale);
    the item asks for one more vote when any unit does. Units with fewer votes than the
    minimum (an optional question few answered) do not decide. Ranking and correction
    answers do not take part. The wanted figure rises to one more than the votes in, never
    past ``max_annotators``, and never falls. The confidence threshold is not applied here
    but when a reliability fit finishes (``items_ask_another_vote``): a submit has no fit
    of its own.
    """
    if not project.adaptive_overlap:
        return None
    base = project.base_overlap
    n_votes = item_votes.human_annotations
    if not base <= n_votes < project.max_annotators or base + overlap_extra > n_votes:
        # Under the minimum the base figure already asks; at the maximum nothing more is
        # asked; with votes still promised above what is in, wait for them.
        return None
    wanted_more = any(
        needs_another_vote(
            unit["counts"],
            min_votes=base,
            max_votes=project.max_annotators,
            agreement_threshold=project.agreement_threshold,
            ordinal=unit["ordinal"],
            scale=unit["scale"],
        )
        for unit in _vote_units(votes=item_votes.votes, questions=questions)
        if sum(unit["counts"].values()) >= base
    )
    if not wanted_more:
        return None
    return min(project.max_annotators, n_votes + 1)


@transaction.atomic
def items_ask_another_vote(*, project: Project, item_ids: Iterable[int]) -> int:
    """Ask one more vote of each item of an adaptive project, up to ``max_annotators``.

    For a reliability fit's low-confidence items (``confidence_threshold``): each non-gold
    item whose human votes are under the maximum comes to want at least one more than it
    has (votes still promised count: an item already waiting for one is left as it is).
    Returns how many items reopened. The rows are locked in id order before their votes
    are counted, as on submit, so the two never lose each other's raise.
    """
    if not project.adaptive_overlap:
        return 0
    ids = sorted({int(item_id) for item_id in item_ids})
    base = project.base_overlap
    reopened = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = list(
            Item.objects.select_for_update(no_key=True)
            .filter(pk__in=chunk, project=project, is_gold=False)
            .order_by("pk")
            .values_list("pk", "overlap_extra", "slots_taken")
        )
        votes = dict(
            Annotation.objects.filter(item_id__in=chunk, source=Source.HUMAN)
            .values("item_id")
            .annotate(n=Count("id"))
            .values_list("item_id", "n")
        )
        changed = []
        for item_id, extra, slots_taken in rows:
            n_votes = votes.get(item_id, 0)
            wanted = min(project.max_annotators, max(base + extra, n_votes + 1))
            if n_votes >= project.max_annotators or wanted <= base + extra:
                continue
            changed.append(
                Item(pk=item_id, overlap_extra=wanted - base, is_full=slots_taken >= wanted)
            )
            reopened += slots_taken < wanted
        if changed:
            Item.objects.bulk_update(changed, ["overlap_extra", "is_full"])
    return reopened


def items_low_confidence_reopen(
    *, project: Project, confidences: Iterable[tuple[int, float]]
) -> int:
    """After a reliability fit: ask one more vote of items whose label confidence is low.

    ``confidences`` holds ``(item_id, confidence)`` per fitted unit (an item may have
    several: questions, rating cells); an item with any unit under the project's
    ``confidence_threshold`` asks (``items_ask_another_vote``). Nothing happens unless
    the project uses adaptive overlap with a confidence threshold. Running it again for
    the same fit changes nothing more: it only raises an item to one vote beyond those in.
    """
    threshold = project.confidence_threshold
    if not project.adaptive_overlap or threshold is None:
        return 0
    low = {item_id for item_id, confidence in confidences if confidence < threshold}
    return items_ask_another_vote(project=project, item_ids=low) if low else 0


def items_fullness_refresh(*, project: Project) -> None:
    """Recompute ``is_full`` of the project's non-gold items after its overlap rule changed."""
    base = project.base_overlap
    Item.objects.filter(project=project, is_gold=False).update(
        is_full=Case(
            When(Q(slots_taken__gte=F("overlap_extra") + base), then=Value(True)),
            default=Value(False),
        )
    )

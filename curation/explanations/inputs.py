"""The preference pairs an explanation job reads, with the annotator groups behind each.

Pairs come from :mod:`curation.pairs` (the same selection every job and export
uses). Each is oriented by response position, A first, so the label (1 when A
was preferred) does not always point one way; ties and corrections (whose chosen
text has no response row to show or act on) are left out. With the ``all``
aggregation every vote is its own pair, which is what lets a feature's effect be
measured within annotator groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from annotation.models import AnnotatorProfile, Project, Response
from annotation.pseudonyms import pseudonym
from annotation.selectors import profile_list_for
from annotation.services.projects import PREFERENCE_KEYS
from curation.pairs import Selection, iter_preference_pairs

# Stated preferences (0-100) fall into three bins, so a group is big enough to read:
# up to 33 low, up to 66 mid, above high (a fractional value between two bins no longer
# falls through them).
PREFERENCE_BINS = ((33.5, "low"), (66.5, "mid"), (100, "high"))
GROUP_FIELDS = ("country", "age", "languages", *(f"pref_{key}" for key in PREFERENCE_KEYS))


@dataclass(frozen=True, slots=True)
class ExplainInput:
    """One oriented pair with what the job stores about it and what the core reads."""

    pair_id: str
    pair_ref: str
    item_id: int
    question: str
    response_a_id: int
    response_b_id: int
    label: int
    annotator: str
    prompt: str
    text_a: str
    text_b: str
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExplainInputs:
    pairs: list[ExplainInput]
    ties: int
    corrections: int
    duplicates: int


def pair_ref(*, item_id: int, question: str, first: int, second: int) -> str:
    """A pair regardless of orientation: item, question and the two responses, lower id first."""
    low, high = sorted((first, second))
    return f"{item_id}:{question}:{low}:{high}"[:200]


def preference_bin(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not 0 <= value <= 100:
        return None
    return next(name for upper, name in PREFERENCE_BINS if value <= upper)


def profile_groups(profile: AnnotatorProfile) -> dict[str, str]:
    """The group an annotator belongs to on each profile field they answered.

    Country of residence, age band, first-listed language, and each stated
    preference binned low / mid / high. Unanswered fields give no group.
    """
    groups: dict[str, str] = {}
    if profile.residence_country:
        groups["country"] = profile.residence_country
    if profile.age_band and profile.age_band != "prefer_not_to_say":
        groups["age"] = profile.age_band
    languages = [
        entry.get("language")
        for entry in (profile.languages or [])
        if isinstance(entry, dict) and isinstance(entry.get("language"), str)
    ]
    if languages:
        groups["languages"] = languages[0]
    for key in PREFERENCE_KEYS:
        binned = preference_bin((profile.stated_preferences or {}).get(key))
        if binned:
            groups[f"pref_{key}"] = binned
    return groups


def annotator_groups(*, project: Project) -> dict[str, dict[str, str]]:
    """Pseudonym (as pairs name annotators) -> profile groups, for the project's annotators."""
    salt = str(project.id)
    return {
        pseudonym(profile.user_id, salt): profile_groups(profile)
        for profile in profile_list_for(project=project)
    }


def _positions(response_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    return {
        rid: (position, rid)
        for rid, position in Response.objects.filter(id__in=set(response_ids)).values_list(
            "id", "position"
        )
    }


def explain_inputs(*, project: Project, selection: Selection) -> ExplainInputs:
    """The selected pairs, oriented A/B by response position, one per (pair, annotator).

    ``pair_id`` is the pair's orientation-free ref, the same for every annotator's
    judgement of it: :func:`models_gpu.explain.explain_preferences` keeps one row per
    pair and one judgement per annotator.

    A pair voted on by several annotators under an aggregation other than ``all`` has
    no single annotator: it counts in the pooled results but in no group.
    """
    groups = annotator_groups(project=project)
    raw = list(iter_preference_pairs(project=project, selection=selection))
    ties = sum(1 for p in raw if p.tie)
    corrections = sum(1 for p in raw if not p.tie and p.chosen_response_id is None)
    usable = [p for p in raw if not p.tie and p.chosen_response_id is not None]
    order = _positions(
        rid for p in usable for rid in (p.chosen_response_id, p.rejected_response_id)
    )
    seen: set[tuple[str, str]] = set()
    pairs: list[ExplainInput] = []
    for p in usable:
        chosen, rejected = p.chosen_response_id, p.rejected_response_id
        a_first = order.get(chosen, (0, chosen)) <= order.get(rejected, (0, rejected))
        annotator = p.annotators[0] if len(p.annotators) == 1 else ""
        ref = pair_ref(item_id=p.item_id, question=p.question, first=chosen, second=rejected)
        # One judgement per annotator and pair; the core merges an annotator's repeats
        # too, but this count goes in the result.
        if (ref, annotator) in seen:
            continue
        seen.add((ref, annotator))
        pairs.append(
            ExplainInput(
                pair_id=ref,
                pair_ref=ref,
                item_id=p.item_id,
                question=p.question,
                response_a_id=chosen if a_first else rejected,
                response_b_id=rejected if a_first else chosen,
                label=1 if a_first else 0,
                annotator=annotator,
                prompt=p.prompt_text,
                text_a=p.chosen_text if a_first else p.rejected_text,
                text_b=p.rejected_text if a_first else p.chosen_text,
                groups=groups.get(annotator, {}) if annotator else {},
            )
        )
    return ExplainInputs(
        pairs=pairs, ties=ties, corrections=corrections, duplicates=len(usable) - len(pairs)
    )

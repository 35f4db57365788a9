"""Instance tags from an LM judge, for routing: asked once per item and judge version, cached.

A routing job describes each item by tags (domain, safety concern, complexity of
intent, expertise needed, open-endedness). With a judge as the tag source, the judge
is asked, per item, the tagging template (``Judge.prompts["tagging"]`` or
:data:`models_gpu.judges.DEFAULT_TAG_PROMPT`) through the judge's own backend: the
chat-completions endpoint (retries, concurrency cap, request cap, the outbound
client) or the local causal LM (option letters by next-token probability). The
answer is read strictly (:func:`models_gpu.judges.parse_tags`).

Every answer, parsed or not, is stored as a :class:`~curation.models.JudgeTagging`
keyed by a hash of what it depends on, so a re-run with the same judge version and
inputs sends no request. Items the judge could not tag (an unparseable answer, a
failed request, the request cap) keep the built-in tagger's tags; the counts and a
few of the reasons go into the routing job's result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

import models_gpu.judges as core
from annotation.errors import ValidationFailed
from annotation.models import Project
from curation.judges.runner import backend_build
from curation.judges.services import judge_version_current
from curation.models import Job, Judge, JudgeBackend, JudgeTagging, JudgeVersion

TAGGING_BACKENDS = (JudgeBackend.OPENAI, JudgeBackend.LOCAL)
MAX_REASONS = 5


@dataclass
class TaggingOutcome:
    """Tags per item the judge gave (items it did not tag are absent) and the counts."""

    tags: dict[int, dict[str, str]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def tag_source_resolve(*, project: Project, source: str, routing_judge: str = "") -> Judge | None:
    """The judge that tags for a routing job, or None for the built-in tagger.

    ``source``: ``builtin``; a judge of the project by id or name; or ``auto``: the judge
    whose labels the job routes on (``routing_judge``, a version label such as
    ``gpt@v1``) when it is a configured chat or local judge, else the built-in tagger.
    Raises ``ValidationFailed`` for a judge that does not exist or cannot tag.
    """
    source = (source or "auto").strip()
    if source == "builtin":
        return None
    if source == "auto":
        if not routing_judge:
            return None
        version = (
            JudgeVersion.objects.filter(label=routing_judge, judge__project=project)
            .select_related("judge")
            .first()
        )
        if version is None or version.judge.backend not in TAGGING_BACKENDS:
            return None
        return version.judge
    judges = Judge.objects.filter(project=project)
    judge = (judges.filter(pk=int(source)).first() if source.isdigit() else None) or judges.filter(
        name=source
    ).first()
    if judge is None:
        raise ValidationFailed(
            "params.tag_source must be auto, builtin, or a judge of this project (id or name).",
            field="params.tag_source",
        )
    if judge.backend not in TAGGING_BACKENDS:
        raise ValidationFailed(
            f"The judge {judge.name!r} ({judge.backend}) cannot tag: use a chat-completions or "
            "a local causal-LM judge, or builtin.",
            field="params.tag_source",
        )
    return judge


def tagging_input_hash(
    version: JudgeVersion, template: str, vocabulary: core.TagVocabulary, prompt: str
) -> str:
    canonical = json.dumps(
        [
            version.fingerprint,
            template,
            core.SYSTEM_PROMPT,
            [[tag, list(values)] for tag, values in vocabulary.items()],
            prompt,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def items_tag(
    *,
    judge: Judge,
    item_ids: Sequence[int],
    prompts: Sequence[str],
    vocabulary: core.TagVocabulary,
    job: Job | None = None,
    backend: Any = None,
) -> TaggingOutcome:
    """Tag the items (``prompts`` aligned with ``item_ids``) with ``judge``; cached per input.

    Stored answers for the same inputs are reused without a request; the rest are
    asked in one batch (the backend's concurrency cap and the judge's request cap
    apply) and stored, parsed or not, except failed requests and those the cap left
    out, which a later run asks again.
    """
    version = judge_version_current(judge=judge)
    template = (judge.prompts or {}).get("tagging") or core.DEFAULT_TAG_PROMPT
    hashes = [tagging_input_hash(version, template, vocabulary, prompt) for prompt in prompts]
    stored = {
        (row.item_id, row.input_hash): row
        for row in JudgeTagging.objects.filter(version=version, item_id__in=list(item_ids)).only(
            "item_id", "input_hash", "outcome", "tags", "reason"
        )
    }
    outcome = TaggingOutcome()
    counts = {"cached": 0, "asked": 0, "abstained": 0, "failed": 0, "capped": 0}
    reasons: list[str] = []

    def note(item_id: int, reason: str) -> None:
        if len(reasons) < MAX_REASONS:
            reasons.append(f"item {item_id}: {reason}"[:300])

    missing: list[int] = []
    for index, (item_id, digest) in enumerate(zip(item_ids, hashes, strict=True)):
        row = stored.get((item_id, digest))
        if row is None:
            missing.append(index)
            continue
        counts["cached"] += 1
        if row.outcome == "label" and _complete(row.tags, vocabulary):
            outcome.tags[item_id] = dict(row.tags)
        else:
            counts["abstained"] += 1
            note(item_id, row.reason)
    requests = 0
    if missing:
        backend = backend or backend_build(judge=judge, version=version)
        verdicts = backend.tags(
            [core.TagTask(prompts[index]) for index in missing], vocabulary, template
        )
        requests = backend.requests
        rows: list[JudgeTagging] = []
        for index, verdict in zip(missing, verdicts, strict=True):
            item_id = item_ids[index]
            if verdict is None:
                counts["capped"] += 1
                continue
            counts["asked"] += 1
            if verdict.abstained and verdict.reason.startswith("request failed"):
                counts["failed"] += 1
                note(item_id, verdict.reason)
                continue
            if verdict.abstained:
                counts["abstained"] += 1
                note(item_id, verdict.reason)
            else:
                outcome.tags[item_id] = dict(verdict.choice)
            rows.append(
                JudgeTagging(
                    version=version,
                    item_id=item_id,
                    job=job,
                    input_hash=hashes[index],
                    outcome="abstain" if verdict.abstained else "label",
                    tags={} if verdict.abstained else dict(verdict.choice),
                    reason=verdict.reason[:500],
                    raw=(verdict.raw or "")[:20_000],
                )
            )
        with transaction.atomic():
            # Two jobs tagging the same items at once: the first answers stay.
            JudgeTagging.objects.bulk_create(rows, ignore_conflicts=True)
    fallback = len(item_ids) - len(outcome.tags)
    outcome.summary = {
        "source": "judge",
        "judge": judge.id,
        "version": version.label,
        "items": len(item_ids),
        "from_judge": len(outcome.tags),
        "built_in": fallback,
        **counts,
        "requests": requests,
        "reasons": reasons,
    }
    return outcome


def _complete(tags: Any, vocabulary: Mapping[str, Sequence[str]]) -> bool:
    return isinstance(tags, dict) and all(
        tags.get(tag) in values for tag, values in vocabulary.items()
    )

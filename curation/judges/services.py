"""Writes for judges: configure them, version what they say with, test one on an item.

A judge's *version* freezes everything that changes its verdicts (backend, URL,
model, prompts, how disagreeing orders are resolved, the reward model). Saving a
judge with different values of those makes the next run create a new version;
connection settings (timeout, retries, concurrency, request cap, API key) change
nothing about the verdicts and make no new version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

import models_gpu.judges as core
from annotation.errors import Conflict, ValidationFailed
from annotation.models import Item, Project
from annotation.services import annotation_ai_store
from curation import outbound
from curation import params as check
from curation.judges.secrets import api_key_encrypt
from curation.models import (
    Artifact,
    Job,
    JobKind,
    JobStatus,
    Judge,
    JudgeBackend,
    JudgeVerdict,
    JudgeVersion,
)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._\-]{0,99}$")
# (field, low, high, integer, nullable)
NUMBERS = {
    "timeout_seconds": (0.1, 600.0, False, False),
    "max_retries": (0, 10, True, False),
    "concurrency": (1, 64, True, False),
    "max_requests_per_job": (1, 10_000_000, True, True),
    "batch_size": (1, 256, True, False),
}
FIELDS = (
    "name",
    "backend",
    "base_url",
    "model",
    "api_key",
    "api_key_env",
    "timeout_seconds",
    "max_retries",
    "concurrency",
    "max_requests_per_job",
    "batch_size",
    "logprobs",
    "reward_job",
    "on_disagreement",
    "prompts",
)
VERSIONED = ("backend", "base_url", "model", "logprobs", "on_disagreement")


def _number(data: Mapping[str, Any], key: str) -> Any:
    low, high, integer, nullable = NUMBERS[key]
    try:
        return check.number(data, key, low=low, high=high, integer=integer, nullable=nullable)
    except ValidationFailed as error:
        raise ValidationFailed(error.detail.removeprefix("params."), field=key) from None


def _clean_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("base_url is required for the openai backend.", field="base_url")
    url = url.strip()
    if len(url) > 2000:
        raise ValidationFailed("base_url must be at most 2000 characters.", field="base_url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationFailed(
            "base_url cannot contain spaces or control characters.", field="base_url"
        )
    try:
        refusal = outbound.literal_address_refusal(url)
    except outbound.TransportError as exc:
        raise ValidationFailed(f"base_url: {exc.message}", field="base_url") from None
    if refusal:
        raise ValidationFailed(
            f"base_url points to {refusal}, which judges may not call (see "
            "BALLOT_OUTBOUND_ALLOW_PRIVATE and BALLOT_OUTBOUND_ALLOWED_NETWORKS).",
            field="base_url",
        )
    return url


def prompts_clean(prompts: Any) -> dict[str, str]:
    """Check edited templates: known kinds (the question kinds and ``tagging``), known
    placeholders, the required ones present."""
    if prompts is None:
        return {}
    if not isinstance(prompts, dict):
        raise ValidationFailed(
            "prompts must be an object: question kind -> template.", field="prompts"
        )
    clean: dict[str, str] = {}
    for kind, template in prompts.items():
        if kind not in core.DEFAULT_TEMPLATES:
            raise ValidationFailed(
                f"Unknown template {kind!r}; use {', '.join(core.DEFAULT_TEMPLATES)}.",
                field=f"prompts.{kind}",
            )
        if template in (None, ""):
            continue  # back to the default
        if not isinstance(template, str) or len(template) > 20_000:
            raise ValidationFailed(
                "A template is text of at most 20000 characters.", field=f"prompts.{kind}"
            )
        problems = core.template_problems(kind, template)
        if problems:
            raise ValidationFailed("; ".join(problems) + ".", field=f"prompts.{kind}")
        clean[kind] = template
    return clean


def _reward_job(project: Project, value: Any) -> Job | None:
    if value in (None, ""):
        return None
    job = Job.objects.filter(
        pk=value if isinstance(value, int) else -1,
        project=project,
        kind=JobKind.REWARD,
        status=JobStatus.SUCCEEDED,
    ).first()
    if job is None:
        raise ValidationFailed(
            "reward_job must be the id of a succeeded reward job of this project.",
            field="reward_job",
        )
    return job


def _clean(project: Project, data: Mapping[str, Any], current: Judge | None) -> dict[str, Any]:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValidationFailed(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    out: dict[str, Any] = {}
    if current is None:
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name.strip()):
            raise ValidationFailed(
                "name is 1-100 letters, digits, spaces, dots, dashes or underscores.",
                field="name",
            )
        out["name"] = name.strip()
    elif "name" in data and data["name"] != current.name:
        raise ValidationFailed(
            "A judge's name cannot change (its labels carry it); create another judge.",
            field="name",
        )
    if "backend" in data or current is None:
        if data.get("backend") not in JudgeBackend.values:
            raise ValidationFailed(
                f"backend must be one of {', '.join(JudgeBackend.values)}.", field="backend"
            )
        out["backend"] = data["backend"]
    backend = out.get("backend") or current.backend  # type: ignore[union-attr]
    merged = {**(_as_dict(current) if current else {}), **data}
    if backend == JudgeBackend.OPENAI:
        out["base_url"] = _clean_url(merged.get("base_url"))
        model = merged.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 500:
            raise ValidationFailed("model (the served model's name) is required.", field="model")
        out["model"] = model.strip()
    elif backend == JudgeBackend.LOCAL:
        model = merged.get("model")
        if not isinstance(model, str) or check.model_folder(model) is None:
            raise ValidationFailed(
                "model must name a folder relative to one of the model roots the administrator "
                "configured (BALLOT_MODEL_ROOTS).",
                field="model",
            )
        out["model"], out["base_url"] = model, ""
    else:
        out["base_url"], out["model"] = "", ""
        if "reward_job" in data:
            out["reward_job"] = _reward_job(project, data["reward_job"])
    for key in NUMBERS:
        if key in data:
            out[key] = _number(data, key)
    if "logprobs" in data:
        if not isinstance(data["logprobs"], bool):
            raise ValidationFailed("logprobs must be true or false.", field="logprobs")
        out["logprobs"] = data["logprobs"]
    if "on_disagreement" in data:
        if data["on_disagreement"] not in ("tie", "abstain"):
            raise ValidationFailed(
                "on_disagreement must be tie or abstain.", field="on_disagreement"
            )
        out["on_disagreement"] = data["on_disagreement"]
    if "prompts" in data:
        out["prompts"] = prompts_clean(data["prompts"])
    if "api_key_env" in data:
        env = data["api_key_env"] or ""
        if not isinstance(env, str) or (env and not ENV_NAME.match(env)):
            raise ValidationFailed(
                "api_key_env must be an environment variable name (letters, digits, _).",
                field="api_key_env",
            )
        out["api_key_env"] = env
    if "api_key" in data:
        key = data["api_key"]
        if (
            key is not None
            and not isinstance(key, str)
            or (isinstance(key, str) and len(key) > 1000)
        ):
            raise ValidationFailed("api_key must be text (empty to remove it).", field="api_key")
        out["api_key_encrypted"] = api_key_encrypt(key) if key else ""
    return out


def _as_dict(judge: Judge) -> dict[str, Any]:
    return {"base_url": judge.base_url, "model": judge.model}


@transaction.atomic
def judge_create(
    *, project: Project, user: AbstractBaseUser | None, data: Mapping[str, Any]
) -> Judge:
    """A new judge of ``project``; 400 naming the field for bad input, 409 for a taken name."""
    values = _clean(project, data, None)
    try:
        with transaction.atomic():
            return Judge.objects.create(project=project, created_by=user, **values)
    except IntegrityError:
        raise Conflict(f"This project already has a judge named {values['name']!r}.", field="name")


@transaction.atomic
def judge_update(*, judge: Judge, data: Mapping[str, Any]) -> Judge:
    """Change a judge's settings (the name stays); the next run versions what changed."""
    values = _clean(judge.project, data, judge)
    for key, value in values.items():
        setattr(judge, key, value)
    judge.save()
    return judge


def judge_delete(*, judge: Judge) -> None:
    """Delete a judge and its versions' verdicts; the AI annotations it wrote stay."""
    judge.delete()


def reward_job_resolve(judge: Judge) -> Job | None:
    """The reward job a reward-model judge uses: its own, else the project's latest."""
    if judge.reward_job_id:
        return judge.reward_job
    return (
        Job.objects.filter(
            project_id=judge.project_id, kind=JobKind.REWARD, status=JobStatus.SUCCEEDED
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def version_settings(judge: Judge) -> dict[str, Any]:
    """What the judge's verdicts depend on; its hash is the version's fingerprint."""
    values: dict[str, Any] = {key: getattr(judge, key) for key in VERSIONED}
    # The question kinds' templates only: the tagging template changes no verdict, and
    # tags are cached by a hash of their own inputs (template included).
    values["prompts"] = {
        kind: judge.prompts.get(kind) or core.DEFAULT_PROMPTS[kind] for kind in core.DEFAULT_PROMPTS
    }
    values["system_prompt"] = core.SYSTEM_PROMPT
    if judge.backend == JudgeBackend.REWARD:
        job = reward_job_resolve(judge)
        if job is None:
            raise ValidationFailed(
                "A reward-model judge needs a succeeded reward job in the project: run one first.",
                field="reward_job",
            )
        artifact = Artifact.objects.filter(job=job, kind="reward-model").first()
        if artifact is None:
            raise ValidationFailed("The reward job wrote no model.", field="reward_job")
        values["reward_job"] = job.id
        values["reward_sha256"] = artifact.sha256
        values["embedding_model"] = (job.params or {}).get("embedding_model")
    else:
        values["logprobs"] = judge.logprobs if judge.backend == JudgeBackend.OPENAI else None
    return values


def judge_version_current(*, judge: Judge) -> JudgeVersion:
    """The version matching the judge's settings now, created (numbered next) when new.

    Concurrent callers with the same settings get the same row: the fingerprint is
    unique per judge and a lost insert race reads the winner's row.
    """
    settings_now = version_settings(judge)
    fingerprint = hashlib.sha256(
        json.dumps(settings_now, sort_keys=True, default=str).encode()
    ).hexdigest()
    existing = JudgeVersion.objects.filter(judge=judge, fingerprint=fingerprint).first()
    if existing is not None:
        return existing
    for _ in range(3):
        try:
            with transaction.atomic():
                number = (
                    JudgeVersion.objects.filter(judge=judge)
                    .order_by("-number")
                    .values_list("number", flat=True)
                    .first()
                    or 0
                ) + 1
                return JudgeVersion.objects.create(
                    judge=judge,
                    number=number,
                    label=f"{judge.name}@v{number}",
                    fingerprint=fingerprint,
                    settings=settings_now,
                )
        except IntegrityError:
            existing = JudgeVersion.objects.filter(judge=judge, fingerprint=fingerprint).first()
            if existing is not None:
                return existing
    raise Conflict("Could not number a new judge version; try again.")


def judge_test(
    *,
    judge: Judge,
    item: Item,
    transport: core.Transport | None = None,
    limits: Any = None,
) -> dict[str, Any]:
    """Judge one item now (nothing stored): both orders' verdicts and raw outputs per question.

    Someone waits for the answer, so the chat backend keeps to
    :class:`~curation.judges.runner.Interactive` limits (20 s in all, a request waits
    at most 10 s, one retry) whatever the judge's own timeout and retries. ``error``
    says in one line why the judge gave no usable answer (timed out, the HTTP
    status, an unparseable answer), None when every question got a verdict.
    """
    from curation.judges.runner import Interactive, backend_build, items_judge

    version = judge_version_current(judge=judge)
    limits = limits or Interactive()
    backend = backend_build(judge=judge, version=version, transport=transport, interactive=limits)
    results, meta = items_judge(judge=judge, version=version, items=[item], backend=backend)
    questions = [result.as_dict() for result in results]
    return {
        "judge": judge.id,
        "version": version.label,
        "item": item.id,
        "requests": meta["requests"],
        "questions": questions,
        "error": _test_error(questions),
        "limits": {
            "deadline_seconds": limits.deadline,
            "request_timeout_seconds": min(judge.timeout_seconds, limits.request_timeout),
            "max_retries": min(judge.max_retries, limits.max_retries),
        },
    }


def _test_error(questions: Sequence[Mapping[str, Any]]) -> str | None:
    """One line on why a test gave no usable verdict: the first failed request, else the
    first unparseable answer; None when nothing abstained."""
    abstained = [q for q in questions if q["outcome"] == "abstain" and q["reason"]]
    if not abstained:
        return None
    failed = [q for q in abstained if "request failed" in q["reason"]]
    first = (failed or abstained)[0]
    what = "the judge did not answer" if failed else "the judge's answer was not usable"
    return f"{what} ({first['question']}): {first['reason']}"[:500]


def verdicts_store(
    *, version: JudgeVersion, results: Sequence[Any], job: Job | None = None
) -> dict[str, int]:
    """Store verdicts and, per item, one AI annotation holding every answer the judge gave.

    One transaction per item: its verdict rows and its annotation together, so a
    crash leaves an item either fully judged or not at all. Verdicts already
    stored for (version, item, question) are kept as they are (a re-run writes
    nothing). Skipped results (the request cap) are not stored: a later run
    judges them. Answers go through the same validation as a human's.
    """
    counts = {"annotations": 0, "verdicts": 0, "labels": 0, "ties": 0, "abstentions": 0}
    by_item: dict[int, list[Any]] = {}
    for result in results:
        if result.outcome != "skipped":
            by_item.setdefault(result.item_id, []).append(result)
    for item_id, item_results in by_item.items():
        with transaction.atomic():
            stored = set(
                JudgeVerdict.objects.filter(version=version, item_id=item_id).values_list(
                    "question_id", flat=True
                )
            )
            fresh = [r for r in item_results if r.question.id not in stored]
            if not fresh:
                continue
            answers = [r.answer for r in fresh if r.answer is not None]
            annotation = None
            if answers:
                annotation, created = annotation_ai_store(
                    project_id=version.judge.project_id,
                    item_id=item_id,
                    judge_name=version.label,
                    answers=answers,
                )
                counts["annotations"] += int(created)
            JudgeVerdict.objects.bulk_create(
                [
                    JudgeVerdict(
                        version=version,
                        item_id=item_id,
                        question=r.question,
                        job=job,
                        annotation=annotation if r.answer is not None else None,
                        outcome=r.outcome,
                        answer=r.answer,
                        confidence=r.confidence,
                        consistent=r.consistent,
                        reason=r.reason[:500],
                        raw=r.raw,
                        input_hash=r.input_hash,
                    )
                    for r in fresh
                ],
                # Two runs of one version racing on an item: the first verdicts stay.
                ignore_conflicts=True,
            )
            counts["verdicts"] += len(fresh)
            for r in fresh:
                key = {"label": "labels", "tie": "ties"}.get(r.outcome, "abstentions")
                counts[key] += 1
    return counts

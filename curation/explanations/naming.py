"""A judge names SAE features: ``propose`` and ``rate`` callables over its backend.

Only a chat (OpenAI-compatible) judge can name: naming needs free text, which the
local-model and reward-model judges do not produce. Its requests go through the
same backend as labelling (:func:`curation.judges.runner.backend_build`), so every
one passes the outbound client's address checks and counts against the judge's
request cap; the API key stays in the backend.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import models_gpu.judges as core
from annotation.errors import ValidationFailed
from curation.judges.runner import backend_build
from curation.judges.services import judge_version_current
from curation.models import Judge, JudgeBackend

NAMING_SYSTEM = (
    "You describe how two groups of texts differ. Answer with what is asked and nothing else."
)
MAX_EXAMPLE_CHARS = 600
MAX_NAME_CHARS = 80
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…"


def propose_prompt(examples: Sequence[tuple[str, str]]) -> str:
    lines = [
        "Each example below is a pair of responses, HIGH and LOW. Name, in at most six "
        "words, the property HIGH responses have more of than LOW ones.",
    ]
    for number, (high, low) in enumerate(examples, start=1):
        lines += [f"Example {number}", f"HIGH: {_clip(high)}", f"LOW: {_clip(low)}"]
    lines.append("Property:")
    return "\n".join(lines)


def rate_prompt(name: str, text_a: str, text_b: str) -> str:
    return (
        f"Property: {name}\nResponse A: {_clip(text_a)}\nResponse B: {_clip(text_b)}\n"
        "How much more does A have the property than B? Answer with one number from "
        "-2 (B much more) to 2 (A much more)."
    )


def parse_name(answer: str) -> str:
    """The first line of the answer, without quotes, a trailing full stop or a label prefix."""
    line = next((part.strip() for part in answer.splitlines() if part.strip()), "")
    line = re.sub(r"^(property|name)\s*:\s*", "", line, flags=re.IGNORECASE)
    return line.strip(" \"'`*.").strip()[:MAX_NAME_CHARS]


def parse_rating(answer: str) -> float:
    """The first number in the answer, clipped to [-2, 2]; 0 when there is none."""
    match = NUMBER.search(answer)
    return 0.0 if match is None else max(-2.0, min(2.0, float(match.group())))


def judge_for_naming(*, project_id: int, judge_id: int, field: str = "params.judge") -> Judge:
    """A chat judge of the project, or a 400 naming ``field``."""
    judge = Judge.objects.filter(pk=judge_id, project_id=project_id).first()
    if judge is None:
        raise ValidationFailed(f"{field} is not a judge of this project.", field=field)
    if judge.backend != JudgeBackend.OPENAI:
        raise ValidationFailed(
            f"{field}: only an OpenAI-compatible judge can name features (it must write "
            f"text); this one is a {judge.get_backend_display()} judge.",
            field=field,
        )
    return judge


def naming_callables(
    judge: Judge, *, transport: core.Transport | None = None
) -> tuple[Callable[[list[tuple[str, str]]], str], Callable[[str, str, str], float], object]:
    """``(propose, rate, budget)`` for :func:`models_gpu.explain.name_features`.

    A failed request (after the backend's retries) proposes no name, or rates 0, so
    a judge outage leaves features unnamed instead of failing the job.
    """
    version = judge_version_current(judge=judge)
    budget = core.RequestBudget(judge.max_requests_per_job)
    backend = backend_build(judge=judge, version=version, budget=budget, transport=transport)
    client = backend.client
    # A name takes a few words more than a label; the system prompt is the naming one.
    client.config = dataclasses.replace(client.config, max_tokens=32)
    client.system_prompt = NAMING_SYSTEM

    def propose(examples: list[tuple[str, str]]) -> str:
        try:
            content, _ = client.complete(propose_prompt(examples))
        except (core.TransportFailure, core.RequestCapReached):
            return ""
        return parse_name(content)

    def rate(name: str, text_a: str, text_b: str) -> float:
        try:
            content, _ = client.complete(rate_prompt(name, text_a, text_b))
        except (core.TransportFailure, core.RequestCapReached):
            return 0.0
        return parse_rating(content)

    return propose, rate, budget

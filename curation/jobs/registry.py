"""Every job kind, in one table: the kinds that run and the ones declared but not built yet.

A new kind is one module under :mod:`curation.jobs.kinds` defining ``SPEC`` and one
line in ``AVAILABLE`` below (plus its ``JobKind`` value and its numerical code in
``models_gpu``). The lifecycle, the Celery tasks, the API and ``manage.py curate``
learn about kinds only from here.
"""

from __future__ import annotations

from typing import Any

from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec
from curation.jobs.kinds import (
    embed,
    explain,
    export,
    fifa,
    label_ai,
    reliability,
    reward,
    route,
    suspects,
)
from curation.models import JobKind

AVAILABLE: dict[str, JobKindSpec] = {
    spec.kind: spec
    for spec in (
        embed.SPEC,
        reward.SPEC,
        fifa.SPEC,
        suspects.SPEC,
        export.SPEC,
        label_ai.SPEC,
        route.SPEC,
        reliability.SPEC,
        explain.SPEC,
    )
}
# Values of ``JobKind`` that exist for what comes next; creating one is a 400 that says so.
NOT_AVAILABLE: dict[str, str] = {}


def kind_get(kind: Any) -> JobKindSpec:
    """The spec of an available kind; a 400 naming ``kind`` otherwise."""
    if isinstance(kind, str) and kind in AVAILABLE:
        return AVAILABLE[kind]
    if isinstance(kind, str) and kind in NOT_AVAILABLE:
        raise ValidationFailed(
            f"Jobs of kind {kind!r} are not available yet. {NOT_AVAILABLE[kind]}", field="kind"
        )
    raise ValidationFailed(f"kind must be one of {', '.join(AVAILABLE)}.", field="kind")


def kinds_describe() -> list[dict[str, Any]]:
    """Every kind with its parameters (types, defaults, help), the unavailable ones last."""
    labels = dict(JobKind.choices)
    described = [{**spec.describe(), "label": labels[kind]} for kind, spec in AVAILABLE.items()]
    described += [
        {
            "kind": kind,
            "label": labels[kind],
            "available": False,
            "summary": reason,
            "queue": None,
            "sharded": False,
            "writes": [],
            "params_component": None,
            "params": [],
        }
        for kind, reason in NOT_AVAILABLE.items()
    ]
    return described

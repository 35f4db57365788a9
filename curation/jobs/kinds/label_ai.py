"""Label items with an LM judge: AI annotations (source ``ai``) through the human checks.

Writes: one ``JudgeVerdict`` per (judge version, item, question) (abstentions
included, with their reason, raw outputs and confidence) and one AI annotation per
item holding the answers the judge gave, named by the judge version. A re-run with
the same judge version writes nothing for what it judged before; a judge whose
prompt or model changed makes a new version and so new annotations beside the old.
The judge's request cap is honoured: the job stops when it is spent and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import models_gpu.judges as core
from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.params import JobParams, integer, integer_list
from curation.judges.runner import JUDGED_KINDS, backend_build, items_judge
from curation.judges.selectors import judge_items_pending
from curation.judges.services import judge_version_current, verdicts_store
from curation.models import Job, JobKind, Judge

if TYPE_CHECKING:
    from annotation.models import Project


@dataclass(frozen=True)
class LabelAIParams(JobParams):
    """Parameters of a label-ai job."""

    title = "LabelAi"

    judge: int | None = integer(
        None, low=1, high=2**31 - 1, nullable=True, help="The judge (its id) that labels."
    )
    item_ids: list[int] = integer_list(
        [], help="Only these items (ids); empty: every item of the project."
    )
    batch_items: int = integer(
        32, low=1, high=1000, help="Items judged and stored together (progress is per batch)."
    )

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        super().check(values, project=project)
        if values.get("judge") is None:
            raise ValidationFailed("params.judge is required (a judge id).", field="params.judge")
        if not Judge.objects.filter(pk=values["judge"], project=project).exists():
            raise ValidationFailed(
                "params.judge is not a judge of this project.", field="params.judge"
            )
        ids = values.get("item_ids") or []
        if ids:
            from annotation.models import Item

            found = set(
                Item.objects.filter(project=project, id__in=ids).values_list("id", flat=True)
            )
            missing = [i for i in ids if i not in found]
            if missing:
                raise ValidationFailed(
                    f"params.item_ids: item {missing[0]} is not in this project.",
                    field="params.item_ids",
                )


def run(job: Job, report: Report) -> dict[str, Any]:
    params = LabelAIParams.from_job(job)
    judge = Judge.objects.filter(pk=params.judge, project_id=job.project_id).first()
    if judge is None:
        raise ValidationFailed("The judge of this job was deleted.", field="params.judge")
    version = judge_version_current(judge=judge)
    items, questions, done = judge_items_pending(
        version=version, item_ids=params.item_ids or None, kinds=JUDGED_KINDS
    )
    budget = core.RequestBudget(judge.max_requests_per_job)
    totals = {"annotations": 0, "verdicts": 0, "labels": 0, "ties": 0, "abstentions": 0}
    result: dict[str, Any] = {
        "judge": judge.id,
        "version": version.label,
        "version_id": version.id,
        "items_pending": len(items),
        "capped": False,
    }
    if not items:
        report(1.0, "nothing to judge: every item was judged by this version")
        return {**result, **totals, "requests": 0, "attempts": 0, "items_judged": 0}
    backend = backend_build(judge=judge, version=version, budget=budget)
    judged = 0
    report(0.0, f"judging {len(items)} items with {version.label}")
    for start in range(0, len(items), params.batch_items):
        batch = items[start : start + params.batch_items]
        results, _ = items_judge(
            judge=judge,
            version=version,
            items=batch,
            backend=backend,
            questions=questions,
            skip=lambda item_id, question_id: (item_id, question_id) in done,
        )
        counts = verdicts_store(version=version, results=results, job=job)
        for key, value in counts.items():
            totals[key] += value
        capped = any(r.outcome == "skipped" for r in results)
        judged += len({r.item_id for r in results if r.outcome != "skipped"})
        report(
            min(judged / len(items), 1.0),
            f"{judged}/{len(items)} items judged, {budget.used} requests",
        )
        if capped:
            result["capped"] = True
            break
    return {
        **result,
        **totals,
        "requests": budget.used,
        "attempts": backend.requests,
        "items_judged": judged,
    }


SPEC = JobKindSpec(
    kind=JobKind.LABEL_AI.value,
    summary="Label items with an LM judge (both orders per pair); AI annotations per judge version.",
    params=LabelAIParams,
    queue="default",
    writes=("JudgeVerdict", "Annotation (source ai)"),
    run=run,
)

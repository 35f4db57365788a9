"""Suspect labels: pairs whose label is probably wrong, by confident learning on held-out margins.

Pairs → embeddings → out-of-fold reward margins (folds keep near-duplicate prompts
together) → :func:`models_gpu.find_suspects`: per-class thresholds, the confident joint
and its estimated noise rate, a cleaned second pass, and the flagged pairs ranked by
their probability of a wrong label. Writes one ``PairScore`` per non-tie pair (the
same rows as FiFA, with ``suspect`` and ``suspect_confidence`` the point here; the FiFA
columns are scored with FiFA's defaults so the charts have them) and
``prompt_embeddings.npy``. The result carries the estimated noise rate and the
expected precision of the flagged set. With ``review`` the items of the flagged pairs
go to the review queue when the scores are stored (the job's results page offers the
same as an action afterwards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import models_gpu
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import finite
from curation.jobs.kinds import fifa
from curation.jobs.kinds.reward import RewardParams
from curation.jobs.params import boolean, default_of, integer, model, number
from curation.models import Job, JobKind
from curation.review.services import review_entries_from_flagged

Suspect = models_gpu.SuspectConfig


@dataclass(frozen=True)
class SuspectParams(RewardParams):
    """Parameters of a suspect-labels job."""

    suspect_threshold: float = number(
        default_of(Suspect, "threshold"),
        low=0.0,
        high=1.0,
        help="Never flag a pair whose estimated probability of a wrong label is below this.",
    )
    flag_share: float = number(
        default_of(Suspect, "flag_share"),
        low=0.0,
        high=1.0,
        help="Share of the estimated number of wrong labels to flag, most confident first "
        "(1 flags as many as confident learning estimates are wrong).",
    )
    max_flagged: int | None = integer(
        default_of(Suspect, "max_flagged"),
        low=0,
        high=10_000_000,
        nullable=True,
        help="At most this many flags (a review budget); null for no cap.",
    )
    calibrate: bool = boolean(
        default_of(Suspect, "calibrate"),
        help="Fit a temperature to the held-out margins before reading them as "
        "probabilities (changes the probabilities, never the ranking).",
    )
    refit: bool = boolean(
        default_of(Suspect, "refit"),
        help="Rank by a second held-out pass trained without the pairs the first pass "
        "estimated wrong (Bradley–Terry head only; skipped with reward_model_path).",
    )
    reward_model_path: str | None = model(
        help="A local Hugging Face reward model (a folder under a configured model root) "
        "that supplies the margins instead of the Bradley–Terry head; null to train one.",
    )
    review: bool = boolean(
        False, help="Put the items of the flagged pairs in the review queue when the job finishes."
    )

    def suspect_config(self) -> models_gpu.SuspectConfig:
        return models_gpu.SuspectConfig(
            threshold=self.suspect_threshold,
            flag_share=self.flag_share,
            max_flagged=self.max_flagged,
            calibrate=self.calibrate,
            refit=self.refit,
        )

    def pipeline_config(self) -> models_gpu.PipelineConfig:
        return models_gpu.PipelineConfig(
            embedding=self.embedding(),
            reward=self.reward_config(),
            fifa=models_gpu.FiFAConfig(seed=self.seed),
            suspects=self.suspect_config(),
        )


def run(job: Job, report: Report) -> dict[str, Any]:
    """Score and flag the selected pairs; one ``PairScore`` each, replacing an earlier run's."""
    params = SuspectParams.from_job(job)
    scoring, stored = fifa.score_and_store(
        job,
        report,
        params=params,
        config=params.pipeline_config(),
        reward_model_path=params.reward_model_path,
    )
    found = scoring.suspects
    result = {
        **stored,
        "suspects": len(found.indices),
        "estimated_noise_rate": finite(found.noise.noise_rate),
        "estimated_noise_count": found.noise.noise_count,
        "expected_precision": finite(found.expected_precision),
        "class_thresholds": [finite(t) for t in found.noise.thresholds],
        "confident_joint": found.noise.confident_joint,
        "temperature": finite(found.temperature),
        "refitted": found.refitted,
        "pruned_for_refit": found.pruned,
        "suspect_threshold": params.suspect_threshold,
        "flag_share": params.flag_share,
        "max_flagged": params.max_flagged,
    }
    if params.review:
        # Idempotent like the scores: an item with an open entry from this feed keeps it.
        result["review_entries"] = review_entries_from_flagged(job=job, user=job.created_by)
    return result


SPEC = JobKindSpec(
    kind=JobKind.SUSPECTS.value,
    summary="Flag pairs whose label is probably wrong (confident learning on held-out reward "
    "margins), with the estimated noise rate and the expected precision of the flags.",
    params=SuspectParams,
    queue="gpu",
    writes=(*fifa.SPEC.writes, "ReviewEntry per flagged item (with review)"),
    run=run,
)

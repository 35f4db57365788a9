"""Explain a preference dataset: SAE features that say what annotators rewarded, and for whom.

Pairs (:mod:`curation.explanations.inputs`, oriented by response position, one
judgement per annotator, with the annotator's profile groups) → embeddings (the
project's model and cache) → :func:`models_gpu.explain.explain_preferences` (a
signed BatchTopK SAE over response differences, per-feature logistic regressions,
sparse probes, n-grams, group effects) → with a judge,
:func:`models_gpu.explain.name_features` → stored rows.
Writes: one ``Explanation`` with its ``ExplanationFeature``, ``ExplanationPair`` and
nonzero ``ExplanationActivation`` rows (replacing an earlier attempt's, in one
transaction) and the SAE (``sae/sae.safetensors`` and ``sae/sae.json``) as artifacts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import transaction

import models_gpu
from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import (
    artifact_store,
    batch_size_param,
    embedding_cache,
    embedding_config,
    embedding_model_param,
    finite,
    job_folder,
)
from curation.jobs.params import boolean, choice, default_of, integer, number
from curation.jobs.selection import SelectionParams
from curation.models import Job, JobKind
from curation.pairs import AGGREGATIONS
from curation.params import SEED_MAX
from curation.storage import absolute
from models_gpu import explain as core
from models_gpu.config import ExplainConfig, SAEConfig

if TYPE_CHECKING:
    from annotation.models import Project

MIN_PAIRS = 20
TOP_IN_RESULT = 5


@dataclass(frozen=True)
class ExplainParams(SelectionParams):
    """Parameters of an explanation job."""

    # Every vote its own pair by default: a feature's effect within an annotator group
    # needs to know who gave each label.
    aggregation: str = choice(
        "all",
        AGGREGATIONS,
        help="How several annotators' votes on one pair combine. The default, all, keeps "
        "every vote as its own judgement, which the group effects need; with another "
        "policy a pair with several voters counts in no group.",
        grouped=True,
    )
    n_features: int = integer(
        default_of(SAEConfig, "n_features"),
        low=2,
        high=1024,
        help="Features in the sparse dictionary (few enough to read every one).",
    )
    k_active: int = integer(
        default_of(SAEConfig, "k_active"),
        low=1,
        high=256,
        help="Features active per pair on average (BatchTopK); at most n_features.",
    )
    include_prompt: bool = boolean(
        default_of(ExplainConfig, "include_prompt"),
        help="Embed the prompt with each response instead of the response alone.",
    )
    held_out_fraction: float = number(
        default_of(ExplainConfig, "held_out_fraction"),
        low=0.05,
        high=0.9,
        help="Share of prompts held out for early stopping, the probes' AUCs and the "
        "judge's fidelity test (no prompt is on both sides).",
    )
    max_epochs: int = integer(
        default_of(SAEConfig, "max_epochs"),
        low=1,
        high=1000,
        help="Most passes over the training pairs (training stops early on held-out loss).",
    )
    top_examples: int = integer(
        default_of(ExplainConfig, "top_examples"),
        low=1,
        high=50,
        help="Top-activating pairs kept per feature and direction.",
    )
    min_group_annotators: int = integer(
        default_of(ExplainConfig, "min_group_annotators"),
        low=1,
        high=100_000,
        help="An annotator group is shown only with at least this many annotators ...",
    )
    min_group_judgements: int = integer(
        default_of(ExplainConfig, "min_group_judgements"),
        low=1,
        high=10_000_000,
        help="... and at least this many judgements.",
    )
    seed: int = integer(
        default_of(ExplainConfig, "seed"),
        low=0,
        high=SEED_MAX,
        help="Seeds the split, the SAE and the probes: one seed, the same features.",
    )
    judge: int | None = integer(
        None,
        low=1,
        high=2**31 - 1,
        nullable=True,
        help="An OpenAI-compatible judge (its id) that names the features; a name is kept "
        "only if the judge's reading of it tracks the feature on held-out pairs. Null: "
        "no names.",
    )
    name_top: int = integer(
        10,
        low=1,
        high=1024,
        help="With a judge: name only the first this many features (ranked: significant "
        "ones by effect size first). Each costs one proposal and a fidelity test of "
        "held-out pairs in requests.",
    )
    batch_size: int = batch_size_param()
    embedding_model: str | None = embedding_model_param()

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        super().check(values, project=project)
        if values["k_active"] > values["n_features"]:
            raise ValidationFailed(
                f"k_active ({values['k_active']}) must not exceed n_features "
                f"({values['n_features']}).",
                field="params.k_active",
            )
        if values["judge"] is not None:
            from curation.explanations.naming import judge_for_naming

            judge_for_naming(project_id=project.id, judge_id=values["judge"])

    def explain_config(self) -> ExplainConfig:
        sae = dataclasses.replace(
            SAEConfig(),
            n_features=self.n_features,
            k_active=self.k_active,
            max_epochs=self.max_epochs,
            seed=self.seed,
        )
        return dataclasses.replace(
            ExplainConfig(),
            sae=sae,
            include_prompt=self.include_prompt,
            held_out_fraction=self.held_out_fraction,
            top_examples=self.top_examples,
            min_group_annotators=self.min_group_annotators,
            min_group_judgements=self.min_group_judgements,
            seed=self.seed,
        )


def run(job: Job, report: Report) -> dict[str, Any]:
    """Pairs → embeddings → SAE and its report → (names) → rows and the SAE's weights."""
    from curation.explanations.inputs import explain_inputs
    from curation.explanations.naming import judge_for_naming, naming_callables
    from curation.explanations.services import explanation_store
    from models_gpu.sae import CONFIG_FILE, WEIGHTS_FILE, save_sae  # torch: imported when run

    params = ExplainParams.from_job(job)
    selection = params.selection()
    report(0.0, "building pairs")
    inputs = explain_inputs(project=job.project, selection=selection)
    pairs = inputs.pairs
    if len({p.pair_id for p in pairs}) < MIN_PAIRS:
        raise ValidationFailed(
            f"Only {len({p.pair_id for p in pairs})} distinct non-tie pairs: too few to "
            f"explain (need at least {MIN_PAIRS}).",
            field="params",
        )
    labels = {p.label for p in pairs}
    if len(labels) < 2:
        raise ValidationFailed(
            "Every judgement prefers the same side: nothing to explain.", field="params"
        )
    embedding = embedding_config(
        embedding_model=params.embedding_model, batch_size=params.batch_size
    )
    cache = embedding_cache()
    config = params.explain_config()
    core_pairs = [
        core.PreferencePair(
            pair_id=p.pair_id,
            prompt=p.prompt,
            text_a=p.text_a,
            text_b=p.text_b,
            label=p.label,
            annotator=p.annotator,
            groups=dict(p.groups),
        )
        for p in pairs
    ]
    explanation = core.explain_preferences(
        core_pairs,
        lambda texts: models_gpu.embed_texts(texts, config=embedding, cache=cache),
        config,
        progress=lambda fraction, message: report(0.02 + 0.8 * fraction, message),
    )
    naming: dict[str, Any] = {"judge": params.judge}
    if params.judge is not None:
        report(0.84, "naming features with the judge")
        judge = judge_for_naming(project_id=job.project_id, judge_id=params.judge)
        propose, rate, budget = naming_callables(judge)
        core.name_features(
            explanation,
            core_pairs,
            propose,
            rate,
            config,
            features=[f.index for f in explanation.features[: params.name_top]],
        )
        naming.update(
            requests=budget.used,
            named=sum(1 for f in explanation.features if f.name),
            proposed=sum(1 for f in explanation.features if f.proposed_name),
        )
    report(0.92, "storing the features")
    folder = f"{job_folder(job)}/sae"
    save_sae(explanation.sae, absolute(folder))
    summary = explanation.to_dict()
    counts = {
        "pairs": explanation.n_pairs,
        "judgements": explanation.n_judgements,
        "train_pairs": explanation.n_train,
        "held_out_pairs": explanation.n_held_out,
        "annotators": len({p.annotator for p in pairs if p.annotator}),
        "ties_excluded": inputs.ties,
        "corrections_excluded": inputs.corrections,
        "repeat_votes_dropped": inputs.duplicates,
    }
    with transaction.atomic():
        stored = explanation_store(
            job=job,
            pairs=pairs,
            pair_ids=explanation.pair_ids,
            activations=np.asarray(explanation.activations),
            report={**summary, "counts": counts},
            config={**dataclasses.asdict(config), "embedding_model": embedding.model},
            weights_path=folder,
        )
        artifact_store(job, "sae-weights", f"{folder}/{WEIGHTS_FILE}", {"config": CONFIG_FILE})
        artifact_store(job, "sae-config", f"{folder}/{CONFIG_FILE}")
    probes = summary["probes"]
    top = list(stored.features.order_by("rank")[:TOP_IN_RESULT])
    return {
        **counts,
        "explanation": stored.id,
        "features": len(summary["features"]),
        "significant": sum(
            1 for f in summary["features"] if (f.get("p_bonferroni") or 1.0) < config.alpha
        ),
        "auc_full": finite(probes.get("auc_full")),
        "auc_length_only": finite(probes.get("auc_length_only")),
        "share_explained": {k: finite(v) for k, v in probes.get("share_explained", {}).items()},
        "top_features": [
            {
                "index": f.index,
                "name": f.name,
                "coef": finite(f.coef),
                "p_bonferroni": f.p_bonferroni,
            }
            for f in top
        ],
        "naming": naming,
        "weights": folder,
    }


SPEC = JobKindSpec(
    kind=JobKind.EXPLAIN.value,
    summary="Explain what the feedback rewards: a small sparse dictionary of features over "
    "response differences, each tied to the labels (coefficient, examples, n-grams) and "
    "broken down by annotator group.",
    params=ExplainParams,
    queue="gpu",
    writes=(
        "Explanation",
        "ExplanationFeature per feature",
        "ExplanationPair per pair",
        "ExplanationActivation per nonzero activation",
        "Artifact: sae/sae.safetensors and sae/sae.json",
    ),
    run=run,
)

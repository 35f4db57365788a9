"""Hybrid routing: decide per item whether a human or the LM judge labels it, under a budget.

Reads every routable item (``curation.routing.routing_inputs``), embeds prompts and the
first two responses, computes instance features (lexical thirds, k-means cluster,
tags from the judge or the built-in tagger, the judge's signals) and runs the strategy of ``models_gpu.routing``.
Writes one ``RoutingDecision`` per item and raises the queue priority of the items
routed to humans; the result holds the strategy that ran (and why the prior replaced a
learned one, if it did) and the cross-fitted budget curve against random.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import models_gpu
from annotation.errors import ValidationFailed
from curation.jobs.base import JobKindSpec, Report
from curation.jobs.common import (
    batch_size_param,
    embedding_cache,
    embedding_config,
    embedding_model_param,
    finite,
)
from curation.jobs.params import (
    JobParams,
    choice,
    default_of,
    integer,
    number,
    string,
)
from curation.models import Job, JobKind
from curation.params import SEED_MAX
from curation.routing import routing_decisions_store, routing_inputs

MIN_ITEMS = 2


@dataclass(frozen=True)
class RouteParams(JobParams):
    """Parameters of a routing job."""

    budget: float = number(
        default_of(models_gpu.RoutingConfig, "budget"),
        low=0.0,
        high=1.0,
        help="Share of the items routed to humans.",
    )
    strategy: str = choice(
        default_of(models_gpu.RoutingConfig, "strategy"),
        models_gpu.ROUTING_STRATEGIES,
        help="gain: the performance-prediction model (simulated mixes, a reward model per "
        "mix); error: a calibrated judge-error classifier; prior: position-inconsistent "
        "verdicts first, then moderate safety concern and complex intents; random.",
    )
    judge: str = string(
        "",
        max_length=200,
        help="The judge whose labels and signals are used (its name on AI labels); empty "
        "for the judge with most labels in the project.",
    )
    question: str = string(
        "", max_length=64, help="The pairwise question; empty for the project's first."
    )
    seed: int = integer(
        default_of(models_gpu.RoutingConfig, "seed"),
        low=0,
        high=SEED_MAX,
        help="Seeds clusters, folds, simulated mixes and tie-breaks.",
    )
    folds: int = integer(
        default_of(models_gpu.RoutingConfig, "folds"),
        low=2,
        high=20,
        help="Cross-fitting folds: no item's human label routes that item.",
    )
    mixes: int = integer(
        default_of(models_gpu.RoutingConfig, "mixes"),
        low=4,
        high=1000,
        help="Simulated human/AI mixes per fit of the performance-prediction model (gain).",
    )
    clusters: int = integer(
        default_of(models_gpu.RoutingConfig, "clusters"),
        low=1,
        high=256,
        help="k of the k-means semantic clusters.",
    )
    min_labelled: int = integer(
        default_of(models_gpu.RoutingConfig, "min_labelled"),
        low=2,
        high=100000,
        help="Fewest items with both a human and a judge label before a learned strategy "
        "runs (else the prior).",
    )
    batch_size: int = batch_size_param()
    tag_source: str = string(
        default_of(models_gpu.RoutingConfig, "tag_source"),
        max_length=200,
        help="Where the instance tags come from: auto (the judge whose labels are routed on, "
        "when it is a configured chat or local judge, else the built-in tagger), builtin (the "
        "prototype tagger on embeddings), or a judge of the project (id or name). Items the "
        "judge cannot tag keep the built-in tags; the result counts them.",
    )
    embedding_model: str | None = embedding_model_param()

    @classmethod
    def check(cls, values: dict[str, Any], *, project) -> None:
        super().check(values, project=project)
        source = values.get("tag_source") or "auto"
        if source not in ("auto", "builtin"):
            from curation.judges.tagging import tag_source_resolve

            tag_source_resolve(project=project, source=source)

    def routing_config(self) -> models_gpu.RoutingConfig:
        return models_gpu.RoutingConfig(
            budget=self.budget,
            strategy=self.strategy,
            seed=self.seed,
            folds=self.folds,
            mixes=self.mixes,
            clusters=self.clusters,
            min_labelled=self.min_labelled,
            tag_source=self.tag_source,
        )


def run(job: Job, report: Report) -> dict[str, Any]:
    """Items → embeddings → features → strategy → decisions and queue priorities."""
    from models_gpu import routing

    params = RouteParams.from_job(job)
    config = params.routing_config()
    inputs = routing_inputs(project=job.project, judge=params.judge, question=params.question)
    n = len(inputs.item_ids)
    if n < MIN_ITEMS:
        raise ValidationFailed(
            f"Only {n} routable items (two responses, not excluded): need {MIN_ITEMS}.",
            field="params",
        )
    embedding = embedding_config(
        embedding_model=params.embedding_model, batch_size=params.batch_size
    )
    cache = embedding_cache()
    emb = models_gpu.embed_texts(
        [*inputs.prompts, *inputs.responses_a, *inputs.responses_b],
        config=embedding,
        cache=cache,
        progress=lambda f, m: report(0.5 * f, f"embedding: {m}"),
    )
    started = time.perf_counter()
    pair = routing.PairEmbeddings(emb[:n], emb[n : 2 * n], emb[2 * n :])
    report(0.5, "features")
    tagger = routing.PrototypeTagger().fit(
        lambda texts: models_gpu.embed_texts(texts, config=embedding, cache=cache)
    )
    tags, tag_sources, tagging = _tags(job, params, inputs, tagger, pair.prompt, report)
    signals = routing.JudgeSignals(
        position_inconsistent=np.array(inputs.position_inconsistent, dtype=bool),
        abstained=np.array(inputs.abstained, dtype=bool),
        confidence=np.array(inputs.confidence, dtype=np.float64),
    )
    features = routing.instance_features(
        inputs.prompts,
        inputs.responses_a,
        inputs.responses_b,
        pair.prompt,
        pair.a,
        pair.b,
        tags=tags,
        tag_sources=tag_sources,
        signals=signals if inputs.judge else None,
        config=config,
    )
    result = routing.route_items(
        features,
        np.array(inputs.human, dtype=np.float64),
        np.array(inputs.ai, dtype=np.float64),
        pair,
        config=config,
        progress=lambda f, m: report(0.55 + 0.4 * f, m),
    )
    report(0.96, "storing decisions")
    routing_decisions_store(
        job=job,
        item_ids=inputs.item_ids,
        to_human=result.to_human.tolist(),
        scores=result.scores.tolist(),
        score_kind=result.used,
        features=features.values,
    )
    return {
        "items": n,
        "judge": inputs.judge or None,
        "question": inputs.question,
        "budget": params.budget,
        "strategy": result.strategy,
        "used": result.used,
        "fallback": result.fallback,
        "labelled": result.labelled,
        "routed_human": int(result.to_human.sum()),
        "routed_ai": int((~result.to_human).sum()),
        "features": features.names,
        "tags": tagging,
        "curve": [{**row, "label_accuracy": finite(row["label_accuracy"])} for row in result.curve],
        "seconds_without_embeddings": round(time.perf_counter() - started, 3),
    }


def _tags(job, params, inputs, tagger, prompt_emb, report):
    """Per tag one value per item, where each item's tags came from, and the tagging summary.

    The built-in tagger tags every item; with a judge as the tag source its answers
    replace those of the items it tagged (cached per judge version and input).
    """
    from curation.judges.tagging import items_tag, tag_source_resolve
    from models_gpu import routing

    built_in = tagger.predict(prompt_emb)
    judge = tag_source_resolve(
        project=job.project, source=params.tag_source, routing_judge=inputs.judge
    )
    n = len(inputs.item_ids)
    if judge is None:
        return built_in, ["built-in tagger"] * n, {"source": "built-in", "items": n}
    report(0.52, f"tags from judge {judge.name}")
    outcome = items_tag(
        judge=judge,
        item_ids=inputs.item_ids,
        prompts=inputs.prompts,
        vocabulary=routing.tag_vocabulary(),
        job=job,
    )
    tags = {tag: list(values) for tag, values in built_in.items()}
    sources = ["built-in tagger"] * n
    for index, item_id in enumerate(inputs.item_ids):
        given = outcome.tags.get(item_id)
        if given is None:
            continue
        for tag in tags:
            tags[tag][index] = given[tag]
        sources[index] = f"judge {outcome.summary['version']}"
    return tags, sources, outcome.summary


SPEC = JobKindSpec(
    kind=JobKind.ROUTE.value,
    summary="Route each item to a human or the LM judge under a human budget "
    "(performance-prediction or judge-error model; a documented prior without doubly "
    "labelled items).",
    params=RouteParams,
    queue="gpu",
    writes=("RoutingDecision", "Item.priority of human-routed items"),
    run=run,
)

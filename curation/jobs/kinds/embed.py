"""Embed every text of a project, in shards that may run on several workers.

Writes: one ``JobShard`` row and one ``shard-NNNN.npy`` per shard, then the merged
``embeddings.npy`` as an ``Artifact`` (row i is text i of :func:`project_texts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

import models_gpu
from annotation.models import Item, Project, Response
from curation.conversation import conversation_text
from curation.jobs.base import JobKindSpec, Report, Shards
from curation.jobs.common import (
    EMBEDDING_IDS,
    artifact_store,
    embedding_cache,
    embedding_config,
    job_folder,
)
from curation.jobs.params import JobParams, default_of, integer, model
from curation.models import Job, JobKind, JobShard
from curation.storage import absolute, save_array_atomic


@dataclass(frozen=True)
class EmbedParams(JobParams):
    """Parameters of an embedding job."""

    batch_size: int = integer(
        default_of(models_gpu.EmbeddingConfig, "batch_size"),
        low=1,
        high=4096,
        help="Texts per forward pass.",
    )
    embedding_model: str | None = model(
        help="Embedding model: a folder under a configured model root or the bundled "
        f"{models_gpu.DEFAULT_MODEL}; null for the site's default.",
        allowed_ids=EMBEDDING_IDS,
    )
    shards: int = integer(
        1,
        low=1,
        high=256,
        help="Split the texts into this many shards, embedded in parallel by the workers "
        "of the gpu queue and merged in order.",
    )

    def embedding(self) -> models_gpu.EmbeddingConfig:
        return embedding_config(embedding_model=self.embedding_model, batch_size=self.batch_size)


def project_texts(project: Project) -> list[str]:
    """Every distinct text of a project in a stable order: prompts then responses, by item id."""
    seen: dict[str, None] = {}
    for conversation in (
        Item.objects.filter(project=project)
        .order_by("id")
        .values_list("conversation", flat=True)
        .iterator(2000)
    ):
        # The same text as PreferencePair.prompt_text, so scoring jobs hit this cache.
        seen.setdefault(conversation_text(conversation), None)
    for text in (
        Response.objects.filter(item__project=project)
        .order_by("item_id", "position")
        .values_list("text", flat=True)
        .iterator(2000)
    ):
        seen.setdefault(text, None)
    return list(seen)


def shard_bounds(total: int, shards: int, index: int) -> tuple[int, int]:
    size = math.ceil(total / shards) if shards else total
    return min(index * size, total), min((index + 1) * size, total)


def shard_count(job: Job) -> int:
    return EmbedParams.from_job(job).shards


def run_shard(job: Job, index: int, worker: str = "") -> str:
    """Embed one slice of the project's texts into a shard artifact. A finished shard is skipped."""
    params = EmbedParams.from_job(job)
    shard, _ = JobShard.objects.get_or_create(job=job, index=index)
    if shard.done:
        return shard.artifact_path
    texts = project_texts(job.project)
    start, end = shard_bounds(len(texts), params.shards, index)
    vectors = models_gpu.embed_texts(
        texts[start:end], config=params.embedding(), cache=embedding_cache()
    )
    relative = f"{job_folder(job)}/shard-{index:04d}.npy"
    save_array_atomic(relative, vectors.astype(np.float32))
    JobShard.objects.filter(pk=shard.pk).update(
        done=True, worker=worker[:200], artifact_path=relative, finished_at=timezone.now()
    )
    return relative


def merge(job: Job, report: Report) -> dict[str, Any]:
    """Concatenate the shards in index order into ``embeddings.npy``."""
    params = EmbedParams.from_job(job)
    shards = list(JobShard.objects.filter(job=job).order_by("index"))
    if len(shards) != params.shards or not all(s.done for s in shards):
        raise RuntimeError("embedding shards are missing; the job will be retried")
    arrays = [np.load(absolute(s.artifact_path)) for s in shards]
    merged = (
        np.concatenate([a for a in arrays if a.size], axis=0)
        if any(a.size for a in arrays)
        else np.zeros((0, 0), np.float32)
    )
    relative = f"{job_folder(job)}/embeddings.npy"
    save_array_atomic(relative, merged)
    with transaction.atomic():
        artifact_store(job, "embeddings", relative, {"shape": list(merged.shape)})
    return {
        "texts": int(merged.shape[0]),
        "dim": int(merged.shape[1]) if merged.ndim == 2 else 0,
        "shards": len(shards),
        "workers": sorted({s.worker for s in shards if s.worker}),
        "artifact": relative,
    }


SPEC = JobKindSpec(
    kind=JobKind.EMBED.value,
    summary="Embed every prompt and response of the project (fills the embedding cache).",
    params=EmbedParams,
    queue="gpu",
    writes=("JobShard", "Artifact: shard-NNNN.npy per shard", "Artifact: embeddings.npy"),
    shards=Shards(count=shard_count, run=run_shard, merge=merge),
)

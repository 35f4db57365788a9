"""Helpers shared by the kind modules: model folders, caches, artifacts, JSON-safe results."""

from __future__ import annotations

import hashlib
import math
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings

import models_gpu
from annotation.errors import ValidationFailed
from curation import params as check
from curation.jobs.params import default_of, integer, model
from curation.models import Artifact, Job
from curation.storage import absolute, embedding_cache_dir, file_sha256, oof_cache_dir

# The bundled embedding model, usable without any configured model root.
EMBEDDING_IDS = (models_gpu.DEFAULT_MODEL, f"sentence-transformers/{models_gpu.DEFAULT_MODEL}")


def batch_size_param() -> Any:
    """The ``batch_size`` param of a kind that embeds texts."""
    return integer(
        default_of(models_gpu.EmbeddingConfig, "batch_size"),
        low=1,
        high=4096,
        help="Texts per forward pass of the embedding model.",
    )


def embedding_model_param() -> Any:
    """The ``embedding_model`` param of a kind that embeds texts."""
    return model(
        help="Embedding model: a folder under a configured model root or the bundled "
        f"{models_gpu.DEFAULT_MODEL}; null for the site's default.",
        allowed_ids=EMBEDDING_IDS,
    )


def model_path(name: str | None, key: str, allowed_ids: tuple[str, ...] = ()) -> str | None:
    """The folder a validated model name stands for, checked again where the job runs."""
    if not name:
        return None
    folder = check.model_folder(name, allowed_ids=allowed_ids)
    if folder is None:
        # Validated when the job was created; the roots or the folder changed since.
        raise ValidationFailed(
            f"{key} {name!r} is no longer under a configured model root (BALLOT_MODEL_ROOTS).",
            field=f"params.{key}",
        )
    return folder


def embedding_config(*, embedding_model: str | None, batch_size: int) -> models_gpu.EmbeddingConfig:
    """The embedding settings of a job: its model (or the site's default) and batch size."""
    model = (
        model_path(embedding_model, "embedding_model", EMBEDDING_IDS)
        or settings.BALLOT_EMBEDDING_MODEL
        or None
    )
    return models_gpu.EmbeddingConfig(
        batch_size=batch_size,
        precision=settings.BALLOT_EMBEDDING_PRECISION,
        **({"model": model} if model else {}),
    )


def embedding_cache() -> models_gpu.EmbeddingCache:
    return models_gpu.EmbeddingCache(embedding_cache_dir())


def oof_cache() -> models_gpu.OutOfFoldCache:
    return models_gpu.OutOfFoldCache(oof_cache_dir())


def artifact_store(
    job: Job, kind: str, relative: str, metadata: dict[str, Any] | None = None
) -> Artifact:
    """Record a file the job wrote (hash, size); a re-run of the job updates the same row."""
    path = absolute(relative)
    artifact, _ = Artifact.objects.update_or_create(
        job=job,
        kind=kind,
        path=relative,
        defaults={
            "project": job.project,
            "sha256": file_sha256(path),
            "size": path.stat().st_size,
            "metadata": metadata or {},
        },
    )
    return artifact


def job_folder(job: Job) -> str:
    """Where a job's artifacts go, relative to the storage root."""
    return f"projects/{job.project_id}/jobs/{job.id}"


def finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def code_version() -> str:
    """The code that produced a result: package version plus a hash of the curation and core sources."""
    try:
        package = version("ballot")
    except PackageNotFoundError:
        package = "0"
    digest = hashlib.sha256()
    root = settings.BASE_DIR
    for folder in ("curation", "models_gpu", "annotation"):
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                digest.update(path.read_bytes())
    return f"ballot {package}+{digest.hexdigest()[:12]} (python {platform.python_version()})"

"""The artifact store: a folder on local disk (``BALLOT_STORAGE_ROOT``), shared by web and workers."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings


def storage_root() -> Path:
    root = Path(settings.BALLOT_STORAGE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def absolute(relative: str) -> Path:
    path = (storage_root() / relative).resolve()
    if storage_root().resolve() not in path.parents and path != storage_root().resolve():
        raise ValueError("artifact path escapes the storage root")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_array_atomic(relative: str, array: np.ndarray) -> Path:
    """Write ``array`` as .npy via a temp file and rename, so readers never see half a file."""
    path = absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def embedding_cache_dir() -> Path:
    path = storage_root() / "embedding-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def oof_cache_dir() -> Path:
    """Out-of-fold reward results, so a re-run with other FiFA settings does not retrain."""
    path = storage_root() / "oof-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path

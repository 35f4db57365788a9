"""The charting library comes from its installed Python package, served and collected as a static file."""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management import call_command

from frontend.vendor import VendorFinder


def test_the_plotly_bundle_is_found_under_vendor():
    found = finders.find("vendor/plotly.min.js")
    assert found and Path(found).name == "plotly.min.js"
    assert Path(found).stat().st_size > 1_000_000
    assert "plotly" in Path(found).read_bytes()[:2000].decode("utf-8", "ignore").lower()


def test_only_the_bundle_is_exposed_not_the_package_data_beside_it():
    finder = VendorFinder()
    assert finder.find("vendor/datasets/iris.csv.gz") is None
    assert [path for path, _ in finder.list([])] == ["plotly.min.js"]
    assert finder.check() == []


def test_collectstatic_copies_the_bundle(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "static" / "vendor" / "plotly.min.js").stat().st_size > 1_000_000

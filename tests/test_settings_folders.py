"""Loading the settings creates only the folders that the configuration actually uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Records every Path.mkdir made while the settings module loads, then prints them.
PROBE = """
import json, pathlib, sys
made = []
original = pathlib.Path.mkdir
def recording_mkdir(self, *args, **kwargs):
    made.append(str(self.resolve()))
    return original(self, *args, **kwargs)
pathlib.Path.mkdir = recording_mkdir
import importlib
importlib.import_module(sys.argv[1])
print(json.dumps(made))
"""


def _folders_made(module: str, env_extra: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_DEBUG"}}
    env.update(env_extra)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_postgres_settings_create_no_folder_in_the_checkout():
    made = _folders_made(
        "config.settings.local", {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ballot"}
    )
    assert made == []


def test_a_sqlite_file_elsewhere_gets_its_own_folder_and_not_var(tmp_path):
    database = tmp_path / "data" / "ballot.sqlite3"
    made = _folders_made("config.settings.local", {"DATABASE_URL": f"sqlite:///{database}"})
    assert made == [str(database.parent)]
    assert database.parent.is_dir()


def test_an_in_memory_sqlite_database_creates_nothing():
    assert _folders_made("config.settings.local", {"DATABASE_URL": "sqlite:///:memory:"}) == []


def test_the_embedded_default_creates_var_for_its_database_file():
    made = _folders_made("config.settings.local", {})
    assert made == [str(ROOT / "var")]

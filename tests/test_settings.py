"""The production settings pass Django's deployment checklist, and refuse to start without a secret."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(env_extra: dict) -> subprocess.CompletedProcess:
    # Not the test process's own switches (browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    dropped = {"DJANGO_SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DATABASE_URL": "sqlite:///:memory:",
            **env_extra,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deployment_checklist():
    result = _check({"DJANGO_SECRET_KEY": secrets.token_urlsafe(60)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _check({})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr

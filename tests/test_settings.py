"""The production settings pass Django's deployment checklist, and refuse to start without a secret."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(env_extra: dict) -> subprocess.CompletedProcess:
    # Not the test process's own switches (browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    dropped = {
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "BALLOT_TRUSTED_PROXIES",
    }
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DATABASE_URL": "sqlite:///:memory:",
            "DJANGO_ALLOWED_HOSTS": "ballot.example.org",
            **env_extra,
        }
    )
    # None: the variable is not set at all.
    env = {k: v for k, v in env.items() if v is not None}
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


@pytest.mark.parametrize(
    "key",
    [
        "change-me",
        "CHANGE_ME",
        # Named ids: pytest-xdist workers must collect the same test names.
        pytest.param("django-insecure-" + secrets.token_urlsafe(50), id="django-insecure-random"),
        pytest.param("change-me-" + secrets.token_urlsafe(50), id="change-me-random"),
        "local-only-insecure-key-do-not-deploy",
        "your-secret-key-here",
    ],
)
def test_production_refuses_a_placeholder_secret_key(key):
    result = _check({"DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a well-known placeholder" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = _check({"DJANGO_SECRET_KEY": secrets.token_urlsafe(30)})
    assert result.returncode != 0
    assert "at least 50 are needed" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_production_refuses_a_long_but_repetitive_secret_key():
    result = _check({"DJANGO_SECRET_KEY": "ab" * 40})
    assert result.returncode != 0
    assert "low entropy" in result.stderr


def test_production_refuses_any_host():
    result = _check(
        {"DJANGO_SECRET_KEY": secrets.token_urlsafe(60), "DJANGO_ALLOWED_HOSTS": "example.org,*"}
    )
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS contains '*'" in result.stderr


@pytest.mark.parametrize("hosts", [None, "", " , "], ids=["unset", "empty", "blank"])
def test_production_refuses_to_start_without_explicit_allowed_hosts(hosts):
    result = _check({"DJANGO_SECRET_KEY": secrets.token_urlsafe(60), "DJANGO_ALLOWED_HOSTS": hosts})
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


def test_production_refuses_a_trusted_proxy_that_is_not_an_address():
    result = _check(
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
            "BALLOT_TRUSTED_PROXIES": "10.0.0.0/8,proxy",
        }
    )
    assert result.returncode != 0
    assert "BALLOT_TRUSTED_PROXIES has 'proxy'" in result.stderr


def test_the_docker_compose_instructions_make_a_key_production_accepts():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "secrets.token_urlsafe(50)" in compose
    result = _check(
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "BALLOT_TRUSTED_PROXIES": "",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_embedding_precision_refuses_to_start():
    result = _check(
        {"DJANGO_SECRET_KEY": secrets.token_urlsafe(60), "BALLOT_EMBEDDING_PRECISION": "fp8"}
    )
    assert result.returncode != 0
    assert "BALLOT_EMBEDDING_PRECISION must be auto, float32 or bfloat16" in result.stderr

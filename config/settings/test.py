"""Test settings: fast hashing, a throwaway storage root. DATABASE_URL picks PostgreSQL in CI."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403

SECRET_KEY = "test-only-insecure-key"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
BALLOT_STORAGE_ROOT = Path(
    os.environ.get("BALLOT_STORAGE_ROOT") or tempfile.mkdtemp(prefix="ballot-test-")
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The test process is one process: its local-memory cache is shared by everything that
# authenticates in it, so the token cache runs in tests as in production.
BALLOT_TOKEN_CACHE_SECONDS = int(os.environ.get("BALLOT_TOKEN_CACHE_SECONDS") or 60)
BALLOT_JOBS_IN_THREAD = False  # jobs run inline in tests, inside the test's transaction
BALLOT_JOB_STALE_SECONDS = int(os.environ.get("BALLOT_JOB_STALE_SECONDS", "120"))

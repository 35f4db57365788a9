"""Local development: the embedded default (SQLite, in-process tasks) unless env says otherwise."""

from __future__ import annotations

import os

from .base import *  # noqa: F403
from .base import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "local-only-insecure-key-do-not-deploy"

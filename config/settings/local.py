"""Local development: the embedded default (SQLite, in-process tasks) unless env says otherwise."""

from __future__ import annotations

import os

from .base import *  # noqa: F403
from .base import env_bool

# Off unless asked for (DJANGO_DEBUG=1): Django's debug pages list every URL
# pattern and settings, which a default `make run` must not show to whoever connects.
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "local-only-insecure-key-do-not-deploy"

# With DEBUG off, runserver no longer serves static files; WhiteNoise serves them
# straight from the apps' static folders (no collectstatic step) and picks up edits.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

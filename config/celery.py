"""The Celery application.

With ``CELERY_BROKER_URL`` unset, tasks run eagerly in the calling process (the
embedded default); with it set, they go to real workers on two queues:
``default`` for CPU-light work and ``gpu`` for the numerical core.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ballot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

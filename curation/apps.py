from __future__ import annotations

from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web, commands, tests): the job
        # lifecycle sends them by name and never imports the task module itself.
        from curation import tasks  # noqa: F401

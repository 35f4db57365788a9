from __future__ import annotations

from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web, commands, tests): the job
        # lifecycle and the webhooks send them by name and never import the task modules.
        # Webhooks and the review queue hear every event the apps publish (annotation never
        # imports curation).
        from annotation import events
        from curation import tasks  # noqa: F401
        from curation.review import services as review_services
        from curation.webhooks import services as webhook_services
        from curation.webhooks import tasks as webhook_tasks  # noqa: F401

        events.subscribe(webhook_services.event_receive)
        # A failed gold answer puts its item in the review queue.
        events.subscribe(review_services.event_receive)

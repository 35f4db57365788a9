from __future__ import annotations

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # schema registers the OpenAPI auth extension; authentication connects the token
        # cache's invalidation in every process, including one that only serves the admin
        # (where tokens are revoked).
        from annotation import (
            authentication,  # noqa: F401
            schema,  # noqa: F401
        )

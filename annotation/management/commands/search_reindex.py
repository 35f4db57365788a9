from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.search import items_search_refresh


class Command(BaseCommand):
    help = (
        "Rebuild items' titles and full-text search documents from their conversations and "
        "responses (for rows written outside the import writer)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, default=None, help="Only this project's items.")

    def handle(self, *args, project: int | None, **options):
        target = None
        if project is not None:
            target = Project.objects.filter(pk=project).first()
            if target is None:
                raise CommandError(f"No project {project}.")
        count = items_search_refresh(project=target)
        self.stdout.write(f"{count} items reindexed")

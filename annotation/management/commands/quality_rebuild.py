from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.quality import quality_summaries_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the quality summaries (per-unit votes, annotator pairs and counters) from "
        "the stored answers, for rows written outside the submit and import writers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, default=None, help="Only this project.")

    def handle(self, *args, project: int | None, **options):
        projects = Project.objects.order_by("id")
        if project is not None:
            projects = projects.filter(pk=project)
            if not projects.exists():
                raise CommandError(f"No project {project}.")
        for project_id in projects.values_list("id", flat=True):
            counts = quality_summaries_rebuild(project_id=project_id)
            self.stdout.write(
                f"project {project_id}: {counts['agreement_sums']} agreement sum rows, "
                f"{counts['pairs']} annotator pair rows, {counts['annotators']} annotators"
            )

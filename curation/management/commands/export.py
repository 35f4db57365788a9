from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from curation.exports.formats import FORMATS
from curation.management.commands._jobs import intermixed, launch_and_follow, parse_params
from curation.models import DatasetVersion
from curation.storage import absolute


class Command(BaseCommand):
    help = (
        "Export a project's feedback as a new immutable dataset version. "
        "Example: manage.py export --project 1 --format trl_preference min_agreement=0.6 fifa_job=12"
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return intermixed(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--format", default="trl_preference", choices=FORMATS)
        parser.add_argument(
            "params",
            nargs="*",
            help="key=value: source, aggregation, min_agreement, fifa_job, test_fraction, outputs, ...",
        )

    def handle(self, *args, project: int, format: str, params: list[str], **options):
        values = {"format": format, **parse_params(params)}
        job = launch_and_follow(
            project_id=project, kind="export", params=values, stdout=self.stdout
        )
        version = DatasetVersion.objects.get(job=job)
        self.stdout.write(
            self.style.SUCCESS(f"dataset version {version.version} (id {version.id}) published")
        )
        self.stdout.write(f"folder: {absolute(version.path)}")
        self.stdout.write(json.dumps(version.row_counts))

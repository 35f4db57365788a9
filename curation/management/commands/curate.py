from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from curation.management.commands._jobs import intermixed, launch_and_follow, parse_params

KINDS = ("fifa", "suspects", "reward", "embed")


class Command(BaseCommand):
    help = (
        "Run a curation job on a project and show its progress. "
        "Example: manage.py curate fifa --project 1 keep_fraction=0.3 source=both"
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return intermixed(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--no-wait", action="store_true", help="queue the job and return")
        parser.add_argument(
            "params", nargs="*", help="key=value parameters (values parsed as JSON when possible)"
        )

    def handle(self, *args, kind: str, project: int, params: list[str], no_wait: bool, **options):
        job = launch_and_follow(
            project_id=project,
            kind=kind,
            params=parse_params(params),
            stdout=self.stdout,
            wait=not no_wait,
        )
        if not no_wait:
            self.stdout.write(self.style.SUCCESS(f"job {job.id} succeeded"))
            self.stdout.write(json.dumps(job.result, indent=2))

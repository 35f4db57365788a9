from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import ValidationFailed
from annotation.models import Project
from annotation.services import items_import
from annotation.services.imports import FORMATS


class Command(BaseCommand):
    help = (
        "Import a JSONL file of items (and their existing labels) into a project. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSONL file, or - for standard input")
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--format", default="auto", choices=FORMATS)

    def handle(self, *args, path: str, project: int, format: str, **options):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        if path == "-":
            stream = sys.stdin.buffer
            total = None
        else:
            file = Path(path)
            if not file.is_file():
                raise CommandError(f"No such file: {path}")
            stream = file.open("rb")
            total = sum(1 for _ in file.open("rb"))
        bars: dict[str, tqdm] = {}

        def progress(stage: str, done: int, of: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(
                    total=of or total, desc=stage, unit="item", file=sys.stderr, leave=False
                )
            bar.update(done - bar.n)

        try:
            with stream:
                result = items_import(project=target, lines=stream, fmt=format, progress=progress)
        except ValidationFailed as exc:
            for error in exc.errors[:20]:
                self.stderr.write(f"  {error['field']}: {error['detail']}")
            raise CommandError(exc.detail)
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} item(s) created, {result.existing} already there, {result.duplicates} duplicate line(s), "
                f"{result.annotations} label(s) stored as annotations ({result.format})."
            )
        )

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import BallotError
from annotation.models import Project
from annotation.progress import progress_bar
from annotation.services import items_import
from annotation.services.imports import FORMATS, ON_CONFLICT


class Command(BaseCommand):
    help = (
        "Import a JSONL file of items (and their existing labels) into a project. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSONL file, or - for standard input")
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--format", default="auto", choices=FORMATS)
        parser.add_argument(
            "--on-conflict",
            default="error",
            choices=ON_CONFLICT,
            help="lines that change items imported before: error (default, nothing is written), "
            "skip (keep the stored items) or update (replace them)",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="leave bad lines (e.g. a pair with an empty reply) out and count them, instead of failing",
        )

    def handle(
        self,
        *args,
        path: str,
        project: int,
        format: str,
        on_conflict: str = "error",
        skip_invalid: bool = False,
        **options,
    ):
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
        bars: dict[str, Any] = {}

        def progress(stage: str, done: int, of: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = progress_bar(
                    total=of or total, desc=stage, unit="item", file=sys.stderr, leave=False
                )
            bar.update(done - bar.n)

        try:
            with stream:
                result = items_import(
                    project=target,
                    lines=stream,
                    fmt=format,
                    progress=progress,
                    on_conflict=on_conflict,
                    skip_invalid=skip_invalid,
                )
        except BallotError as exc:
            for error in exc.errors[:20]:
                self.stderr.write(f"  {error['field']}: {error['detail']}")
            raise CommandError(exc.detail)
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} item(s) created, {result.existing} already there, {result.updated} updated, "
                f"{result.conflicts} conflicting line(s) {'skipped' if on_conflict == 'skip' else 'found'}, "
                f"{result.duplicates} duplicate line(s), {result.skipped_invalid} bad line(s) skipped, "
                f"{result.annotations} label(s) stored as annotations ({result.format})."
            )
        )
        for error in result.invalid_lines:
            self.stdout.write(f"  skipped {error['field']}: {error['detail']}")
        if result.conflict_lines and on_conflict == "skip":
            lines = ", ".join(str(n) for n in result.conflict_lines)
            self.stdout.write(f"  conflicting lines kept as stored: {lines}")

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.adapters import ADAPTERS
from annotation.errors import BallotError
from annotation.models import Project, Question
from annotation.progress import progress_bar
from annotation.services import items_import, question_create
from annotation.services.imports import ON_CONFLICT


class Command(BaseCommand):
    help = "Import a public human-feedback dataset (see shared/datasets) into a project, with its labels."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(ADAPTERS))
        parser.add_argument("path", help="the dataset's folder")
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--on-conflict", default="error", choices=ON_CONFLICT)
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="leave bad rows (e.g. HH-RLHF pairs with an empty reply) out and count them",
        )

    def handle(
        self,
        *args,
        name: str,
        path: str,
        project: int,
        on_conflict: str = "error",
        skip_invalid: bool = False,
        **options,
    ):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        folder = Path(path)
        if not folder.exists():
            raise CommandError(f"No such path: {path}")
        adapted = ADAPTERS[name](folder)
        existing = set(Question.objects.filter(project=target).values_list("name", flat=True))
        try:
            for spec in adapted.questions:
                if spec["name"] not in existing:
                    question_create(project=target, **spec)
            bar = progress_bar(total=len(adapted.rows), desc="import", unit="item", file=sys.stderr)
            result = items_import(
                project=target,
                lines=[json.dumps(row) for row in adapted.rows],
                fmt=adapted.fmt,
                on_conflict=on_conflict,
                skip_invalid=skip_invalid,
                progress=lambda stage, done, of: (
                    bar.update(done - bar.n) if stage == "write" else None
                ),
            )
            bar.close()
        except BallotError as exc:
            for error in exc.errors[:20]:
                self.stderr.write(f"  {error['field']}: {error['detail']}")
            raise CommandError(f"{exc.field}: {exc.detail}" if exc.field else exc.detail)
        self.stdout.write(self.style.SUCCESS(json.dumps(result.as_dict())))

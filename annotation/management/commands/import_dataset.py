from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.adapters import ADAPTERS
from annotation.errors import BallotError
from annotation.models import Project, Question
from annotation.services import items_import, question_create


class Command(BaseCommand):
    help = "Import a public human-feedback dataset (see shared/datasets) into a project, with its labels."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(ADAPTERS))
        parser.add_argument("path", help="the dataset's folder")
        parser.add_argument("--project", type=int, required=True)

    def handle(self, *args, name: str, path: str, project: int, **options):
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
            bar = tqdm(total=len(adapted.rows), desc="import", unit="item", file=sys.stderr)
            result = items_import(
                project=target,
                lines=[json.dumps(row) for row in adapted.rows],
                fmt=adapted.fmt,
                progress=lambda stage, done, of: (
                    bar.update(done - bar.n) if stage == "write" else None
                ),
            )
            bar.close()
        except BallotError as exc:
            raise CommandError(f"{exc.field}: {exc.detail}" if exc.field else exc.detail)
        self.stdout.write(self.style.SUCCESS(json.dumps(result.as_dict())))

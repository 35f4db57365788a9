from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import BallotError
from annotation.models import Project
from curation.judges import selectors, services
from curation.judges.serializers import JudgeOut
from curation.management.commands._jobs import intermixed, parse_params
from curation.models import Judge


class Command(BaseCommand):
    help = (
        "Configure and try LM judges. Examples: manage.py judge create --project 1 name=gpt "
        "backend=openai base_url=https://api.example.org/v1 model=gpt-4o-mini "
        "api_key_env=OPENAI_API_KEY; manage.py judge list --project 1; "
        "manage.py judge test --project 1 --judge 2 --item 17. "
        "Label items with: manage.py curate label-ai --project 1 judge=2"
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return intermixed(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "list", "test"])
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--judge", type=int, help="test: the judge's id")
        parser.add_argument("--item", type=int, help="test: the item's id")
        parser.add_argument("settings", nargs="*", help="create: key=value judge settings")

    def handle(self, *args, action, project, judge, item, settings, **options):
        found = Project.objects.filter(pk=project).first()
        if found is None:
            raise CommandError(f"No project with id {project}.")
        try:
            if action == "create":
                created = services.judge_create(
                    project=found, user=None, data=parse_params(settings)
                )
                self.stdout.write(self.style.SUCCESS(f"judge {created.id} created: {created.name}"))
                self.stdout.write(_dumps(JudgeOut(created).data))
            elif action == "list":
                for row in selectors.judge_list_for(project=found):
                    versions = row.versions.count()
                    self.stdout.write(
                        f"{row.id}\t{row.name}\t{row.backend}\t{row.model or '-'}\t"
                        f"{versions} version{'s' if versions != 1 else ''}"
                    )
            else:
                if judge is None or item is None:
                    raise CommandError("test needs --judge and --item.")
                row = Judge.objects.filter(pk=judge, project=found).first()
                if row is None:
                    raise CommandError(f"No judge {judge} in project {project}.")
                target = selectors.judge_item_get(judge=row, item_id=item)
                self.stdout.write(_dumps(services.judge_test(judge=row, item=target)))
        except BallotError as error:
            field = f"{error.field}: " if error.field else ""
            raise CommandError(f"{field}{error.detail}") from None


def _dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)

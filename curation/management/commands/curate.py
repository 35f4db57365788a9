from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from curation.jobs.registry import AVAILABLE, kinds_describe
from curation.management.commands._jobs import intermixed, launch_and_follow, parse_params


class Command(BaseCommand):
    help = (
        "Run a curation job on a project and show its progress, or list the job kinds. "
        "Example: manage.py curate fifa --project 1 keep_fraction=0.3 source=both; "
        "manage.py curate --list"
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return intermixed(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        parser.add_argument("kind", nargs="?", choices=list(AVAILABLE))
        parser.add_argument("--project", type=int)
        parser.add_argument("--no-wait", action="store_true", help="queue the job and return")
        parser.add_argument(
            "--list",
            action="store_true",
            help="list the job kinds with their parameters (types, defaults, help) and exit",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="with --list: print what GET /api/v1/job-kinds/ returns",
        )
        parser.add_argument(
            "params", nargs="*", help="key=value parameters (values parsed as JSON when possible)"
        )

    def handle(self, *args, kind, project, params, no_wait, list, json, **options):
        if list:
            self._list(as_json=json)
            return
        if kind is None or project is None:
            raise CommandError("Give a kind and --project (or --list to see the kinds).")
        job = launch_and_follow(
            project_id=project,
            kind=kind,
            params=parse_params(params),
            stdout=self.stdout,
            wait=not no_wait,
        )
        if not no_wait:
            self.stdout.write(self.style.SUCCESS(f"job {job.id} succeeded"))
            self.stdout.write(_dumps(job.result))

    def _list(self, *, as_json: bool) -> None:
        kinds = kinds_describe()
        if as_json:
            self.stdout.write(_dumps(kinds))
            return
        for kind in kinds:
            if not kind["available"]:
                self.stdout.write(f"{kind['kind']} (not available yet): {kind['summary']}")
                continue
            sharded = ", sharded" if kind["sharded"] else ""
            self.stdout.write(
                self.style.SUCCESS(f"{kind['kind']}")
                + f" (queue {kind['queue']}{sharded}): {kind['summary']}"
            )
            for param in kind["params"]:
                self.stdout.write(f"  {param['name']}={_dumps(param['default'], indent=None)}")
                self.stdout.write(f"      {_type(param)}. {param['help']}")


def _type(param: dict) -> str:
    text = param["type"] + (f" ({param['format']})" if param["format"] else "")
    if param["choices"]:
        text += f", one of {', '.join(param['choices'])}"
    if param["minimum"] is not None:
        upper = ")" if param["exclusive_maximum"] else "]"
        text += f" in [{_number(param['minimum'])}, {_number(param['maximum'])}{upper}"
    if param["nullable"]:
        text += ", or null"
    return text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _dumps(value, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent)

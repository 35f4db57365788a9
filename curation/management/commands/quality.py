from __future__ import annotations

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from curation.selectors import project_quality


class Command(BaseCommand):
    help = "Print agreement per question and quality per annotator for a project."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args, project: int, **options):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        report = project_quality(project=target, show_usernames=True)
        if options["json"]:
            self.stdout.write(_json(report))
            return
        self.stdout.write(self.style.MIGRATE_HEADING(f"Agreement — {target.name}"))
        self.stdout.write(
            f"{'question':<20}{'kind':<12}{'units':>7}{'alpha':>9}{'cohen':>9}{'fleiss':>9}"
        )
        for q in report["questions"]:
            fleiss = (q.get("fleiss_kappa") or {}).get("kappa")
            self.stdout.write(
                f"{q['question']:<20}{q['kind']:<12}{q['units']:>7}{_f(q.get('krippendorff_alpha')):>9}"
                f"{_f(q.get('cohen_kappa_mean')):>9}{_f(fleiss):>9}"
            )
        self.stdout.write(self.style.MIGRATE_HEADING("Annotators"))
        self.stdout.write(f"{'annotator':<24}{'n':>6}{'agree':>8}{'gold':>8}{'sec/item':>10}  flag")
        for a in report["annotators"]:
            self.stdout.write(
                f"{a.get('username', a['annotator'])[:23]:<24}{a['annotations']:>6}{_f(a['agreement_with_majority']):>8}"
                f"{_f(a['gold_accuracy']):>8}{_f(a['median_seconds_per_item']):>10}  {'; '.join(a['reasons'])}"
            )


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _json(report) -> str:
    return jsonlib.dumps(report, indent=2, default=str)

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

import models_gpu
from annotation.models import Project
from curation.jobs.common import embedding_cache, embedding_config
from curation.routing_report import aim_at, routing_report_rows, routing_report_write


class Command(BaseCommand):
    help = (
        "Evaluate hybrid routing on projects with human and judge labels (e.g. imported with "
        "`import_dataset llmbar` and `import_dataset llmbar_mtbench_human_vs_llm`): for each "
        "judge and human budgets 0, 10, 25, 50, 100%, the accuracy of the mixed labels and of "
        "a reward model trained on them, for random, (a) gain and (b) error. Writes a Markdown "
        "table, a CSV and an HTML plot."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, action="append", required=True)
        parser.add_argument("--out", default="routing-report", help="folder for the files")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--mixes", type=int, default=None, help="simulated mixes per fit")
        parser.add_argument("--folds", type=int, default=None, help="cross-fitting folds")
        parser.add_argument(
            "--reward-steps", type=int, default=None, help="optimiser steps per reward model"
        )
        parser.add_argument(
            "--no-reward-model",
            action="store_true",
            help="skip the reward-model accuracy (label accuracy only; much faster)",
        )
        parser.add_argument("--embedding-model", default=None)

    def handle(
        self,
        *args,
        project,
        out,
        seed,
        mixes,
        folds,
        reward_steps,
        no_reward_model,
        embedding_model,
        **options,
    ):
        projects = []
        for project_id in project:
            found = Project.objects.filter(pk=project_id).first()
            if found is None:
                raise CommandError(f"No project with id {project_id}.")
            projects.append(found)
        chosen = {"mixes": mixes, "folds": folds, "reward_steps": reward_steps}
        for name, value in chosen.items():
            if value is not None and value < 2:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 2.")
        config = models_gpu.RoutingConfig(
            seed=seed, **{k: v for k, v in chosen.items() if v is not None}
        )
        rows = routing_report_rows(
            projects=projects,
            embedding=embedding_config(embedding_model=embedding_model, batch_size=64),
            cache=embedding_cache(),
            config=config,
            reward=not no_reward_model,
            log=lambda message: print(message, file=sys.stderr),
        )
        if not rows:
            raise CommandError("No judge labels on items with human labels in these projects.")
        paths = routing_report_write(rows, Path(out))
        self.stdout.write(paths["markdown"].read_text(encoding="utf-8"))
        aim = aim_at(rows)
        for kind, path in paths.items():
            self.stdout.write(f"{kind}: {path}")
        if aim:
            self.stdout.write(f"aim at 25%: {'met' if aim['met'] else 'not met'}")

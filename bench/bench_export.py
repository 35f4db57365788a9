"""End-to-end export benchmark: database → pair builder → JSONL, rows/s and peak RSS.

Creates a scratch project with N pairwise annotations (bulk inserts in batches),
then runs the export job (``job_create`` → ``run_export``) in a fresh
subprocess per size, so each size's peak RSS (``ru_maxrss``) is its own.
Prints one JSON line per size.

The database is ``DATABASE_URL`` when set (use a scratch database: the bench
creates and deletes its own project), else a temporary SQLite file that is
migrated first. Aims: at least 50,000 rows/s to JSONL and peak RSS under
300 MB whatever the size.

    .venv/bin/python bench/bench_export.py --sizes 100000 1000000
    .venv/bin/python bench/bench_export.py --sizes 100000 --profile   # cProfile of the export
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
ANNOTATORS = 5
BATCH_ITEMS = 5_000


def setup_django(settings_module: str) -> None:
    sys.path.insert(0, str(REPOSITORY_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def migrate_sqlite_if_needed() -> None:
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "sqlite":
        call_command("migrate", verbosity=0, interactive=False)


def build(annotations: int) -> int:
    """A scratch project with ``annotations`` pairwise labels: items × ANNOTATORS. Returns its id."""
    from django.contrib.auth import get_user_model

    from annotation.models import (
        Annotation,
        Item,
        PairwiseAnswer,
        Project,
        Question,
        Response,
    )

    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(username="bench-export-owner")
    project = Project.objects.create(name=f"bench export {annotations}", created_by=owner)
    question = Question.objects.create(project=project, kind="pairwise", name="preference")
    annotators = [
        user_model.objects.get_or_create(username=f"bench-export-annotator-{i}")[0]
        for i in range(ANNOTATORS)
    ]
    items = annotations // ANNOTATORS
    for start in range(0, items, BATCH_ITEMS):
        batch = Item.objects.bulk_create(
            Item(
                project=project,
                external_id=f"bench-{n}",
                conversation=[{"role": "user", "content": f"Benchmark prompt number {n}?"}],
                tags=["bench"],
            )
            for n in range(start, min(start + BATCH_ITEMS, items))
        )
        responses = Response.objects.bulk_create(
            Response(item=item, text=f"Answer {p} to prompt {item.external_id}.", position=p)
            for item in batch
            for p in (0, 1)
        )
        labels = Annotation.objects.bulk_create(
            Annotation(project=project, item=item, annotator=user, time_spent_ms=1000)
            for item in batch
            for user in annotators
        )
        PairwiseAnswer.objects.bulk_create(
            PairwiseAnswer(
                annotation=label,
                question=question,
                # Four of five annotators prefer the first answer: a clear majority.
                chosen=responses[2 * (index // ANNOTATORS) + (index % ANNOTATORS == 0)],
                rejected=responses[2 * (index // ANNOTATORS) + (index % ANNOTATORS != 0)],
                strength=1,
            )
            for index, label in enumerate(labels)
        )
    return project.id


def child(project_id: int, profile: bool) -> None:
    """Run one export job in this (fresh) process and print its figures as JSON."""
    from django.conf import settings

    from annotation.models import Annotation, Project
    from curation.models import DatasetVersion, Job
    from curation.services import job_create

    settings.BALLOT_JOBS_IN_THREAD = False
    project = Project.objects.get(pk=project_id)
    annotations = Annotation.objects.filter(project=project).count()
    started = time.perf_counter()
    params = {"format": "trl_preference", "outputs": ["jsonl"], "test_fraction": 0.1}
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    job = job_create(project=project, kind="export", params=params)  # runs inline (eager)
    if profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    seconds = time.perf_counter() - started
    job = Job.objects.get(pk=job.pk)
    if job.status != "succeeded":
        raise SystemExit(f"export job {job.id} {job.status}: {job.error}")
    version = DatasetVersion.objects.get(job=job)
    rows = version.manifest["rows_total"]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "annotations": annotations,
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "annotations_per_s": round(annotations / seconds),
                "peak_rss_mb": round(peak_kib / 1024, 1),
                "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            }
        )
    )


def cleanup(project_id: int) -> None:
    import shutil

    from annotation.models import Project
    from curation.storage import absolute

    shutil.rmtree(absolute(f"projects/{project_id}"), ignore_errors=True)
    Project.objects.filter(pk=project_id).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--settings", default="config.settings.test")
    parser.add_argument("--profile", action="store_true", help="cProfile the export (stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        setup_django(args.settings)
        child(args.child, args.profile)
        return

    scratch = Path(tempfile.mkdtemp(prefix="ballot-bench-export-"))
    env = dict(os.environ)
    env.setdefault("BALLOT_STORAGE_ROOT", str(scratch / "storage"))
    env.pop("CELERY_BROKER_URL", None)  # jobs run inline in the child
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ.update(env)
    setup_django(args.settings)
    migrate_sqlite_if_needed()
    for size in args.sizes:
        started = time.perf_counter()
        project_id = build(size)
        built = time.perf_counter() - started
        print(f"# built {size} annotations in {built:.1f} s", file=sys.stderr, flush=True)
        command = [
            sys.executable,
            __file__,
            "--child",
            str(project_id),
            "--settings",
            args.settings,
        ]
        if args.profile:
            command.append("--profile")
        try:
            subprocess.run(command, env=env, check=True)
        finally:
            if not args.keep:
                cleanup(project_id)


if __name__ == "__main__":
    main()

"""Import throughput in process: items/s, CPU seconds and SQL statements per 1,000 items.

Imports N native items (the payload ``bench_api.py`` posts: a prompt and two replies of about
300 characters each, no labels) into a fresh project, once per size and path:

- ``service``: ``items_import`` called directly (parsing, validation, the bulk writes);
- ``api``: ``POST /api/v1/projects/<id>/import/`` through Django's WSGI handler (token auth,
  DRF, the upload), as one multipart file (the body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``).

For each it prints wall seconds, items/s, this process's CPU seconds, the PostgreSQL backend's
CPU seconds (read from ``/proc``, so only when the server runs on this machine) and statements
per 1,000 items. CPU seconds hold on a busy machine where items/s does not: quote the load
average with the wall figures. ``--profile`` adds pyinstrument's top frames of the last run.

Usage (PostgreSQL; a scratch database: it creates projects, a user and a token)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ballot_bench \\
        python bench/bench_import.py --sizes 1000,10000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from bench_api import jsonl_items  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from annotation.models import Membership, Project, Question, Role  # noqa: E402
from annotation.services import items_import, token_create  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (None if unreadable)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def project_new(user, tag: str) -> Project:
    project = Project.objects.create(name=f"bench import {tag}", overlap=1)
    Membership.objects.create(user=user, project=project, role=Role.ADMIN)
    Question.objects.create(project=project, kind="pairwise", name="preference", position=0)
    return project


def run_once(path: str, size: int, user, token: str, profiler=None) -> dict:
    tag = uuid.uuid4().hex[:8]
    project = project_new(user, tag)
    payload = jsonl_items(size, f"bench-{tag}")
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    db_before = backend_cpu_seconds()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(count):
        if profiler:
            profiler.start()
        if path == "service":
            created = items_import(
                project=project, lines=payload.splitlines(), fmt="native"
            ).created
        else:
            response = client.post(
                f"/api/v1/projects/{project.pk}/import/?format=native",
                {"file": SimpleUploadedFile("items.jsonl", payload, "application/x-ndjson")},
            )
            assert response.status_code == 201, response.content[:500]
            created = response.json()["created"]
        if profiler:
            profiler.stop()
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    db_after = backend_cpu_seconds()
    assert created == size, f"created {created} items, not {size}"
    return {
        "wall_s": wall,
        "items_per_s": size / wall,
        "cpu_s": cpu,
        "db_cpu_s": None if db_before is None or db_after is None else db_after - db_before,
        "statements_per_1000": statements[0] * 1000 / size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="items per import, comma-separated")
    parser.add_argument("--paths", default="service,api", help="service, api or both")
    parser.add_argument("--repeat", type=int, default=3, help="imports per size and path")
    parser.add_argument("--profile", action="store_true", help="pyinstrument summary, last run")
    args = parser.parse_args(argv)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
    user = get_user_model().objects.create(username=f"bench-import-{uuid.uuid4().hex[:8]}")
    token = token_create(user=user, name="bench import")[1]
    # Warm up imports and caches (the first request loads DRF, the URLconf, ...).
    run_once("api", 50, user, token)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    header = (
        f"{'path':<8} {'items':>6} {'items/s':>9} {'wall s':>7} {'CPU s':>6} "
        f"{'DB CPU s':>8} {'stmts/1000':>10}"
    )
    print(header)
    results = []
    for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            runs = [run_once(path, size, user, token) for _ in range(args.repeat)]
            row = {
                "path": path,
                "items": size,
                **{
                    key: round(statistics.median(r[key] for r in runs), 3)
                    for key in ("items_per_s", "wall_s", "cpu_s", "statements_per_1000")
                },
                "db_cpu_s": None
                if any(r["db_cpu_s"] is None for r in runs)
                else round(statistics.median(r["db_cpu_s"] for r in runs), 3),
                "items_per_s_runs": [round(r["items_per_s"]) for r in runs],
            }
            results.append(row)
            db = "-" if row["db_cpu_s"] is None else f"{row['db_cpu_s']:.2f}"
            print(
                f"{path:<8} {size:>6} {row['items_per_s']:>9,.0f} {row['wall_s']:>7.2f} "
                f"{row['cpu_s']:>6.2f} {db:>8} {row['statements_per_1000']:>10.1f}"
                f"   (runs: {', '.join(f'{v:,}' for v in row['items_per_s_runs'])} items/s)"
            )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if profiler:
        run_once("service", max(int(s) for s in args.sizes.split(",")), user, token, profiler)
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        print("\n--- profile of one service import (largest size) ---")
        print("\n".join(text.splitlines()[:80]))
    print("BENCH_JSON " + json.dumps({"import": results, "loadavg": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""After a bench run: did the queue keep its guarantees in every project the run used?

Reads bench_api.py's ``BENCH_JSON`` line (``@file`` or the line itself) and checks, on
the database in ``DATABASE_URL``, every project its runs labelled:

- no non-gold item has more human annotations than it wants (the project's base overlap
  plus the item's ``overlap_extra``);
- no annotator annotated one item twice, and every annotation belongs to a submitted
  assignment of the same item and annotator;
- each item's ``slots_taken`` equals its live leases plus its submissions.

Meant for the scale-out run (two web nodes on one database, one client driving both), where
the claims of the two nodes race on the same rows. Exit status 1 when any check fails.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ballot_bench \\
    DJANGO_SETTINGS_MODULE=config.settings.local \\
        python bench/check_queue_guarantees.py @var/bench/api.out
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

CHECKS = {
    "items over their overlap": """
        SELECT count(*) FROM (
            SELECT i.id FROM annotation_item i
            JOIN annotation_project p ON p.id = i.project_id
            JOIN annotation_annotation a ON a.item_id = i.id AND a.source = 'human'
            WHERE i.project_id = ANY(%(projects)s) AND NOT i.is_gold
            GROUP BY i.id, p.adaptive_overlap, p.min_annotators, p.overlap, i.overlap_extra
            HAVING count(*) > CASE WHEN p.adaptive_overlap THEN p.min_annotators ELSE p.overlap END
                              + i.overlap_extra
        ) over_full
    """,
    "items annotated twice by one annotator": """
        SELECT count(*) FROM (
            SELECT item_id, annotator_id FROM annotation_annotation
            WHERE project_id = ANY(%(projects)s) AND source = 'human'
            GROUP BY item_id, annotator_id HAVING count(*) > 1
        ) twice
    """,
    "annotations without a submitted assignment of theirs": """
        SELECT count(*) FROM annotation_annotation a
        LEFT JOIN annotation_assignment s ON s.id = a.assignment_id
        WHERE a.project_id = ANY(%(projects)s) AND a.source = 'human'
          AND (s.id IS NULL OR s.status <> 'submitted' OR s.item_id <> a.item_id
               OR s.annotator_id <> a.annotator_id)
    """,
    "items whose slots_taken is not live leases + submissions": """
        SELECT count(*) FROM annotation_item i
        LEFT JOIN LATERAL (
            SELECT count(*) AS held FROM annotation_assignment s
            WHERE s.item_id = i.id AND s.status IN ('active', 'submitted')
        ) s ON true
        WHERE i.project_id = ANY(%(projects)s) AND NOT i.is_gold AND i.slots_taken <> s.held
    """,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    value = Path(args[0][1:]).read_text() if args[0].startswith("@") else args[0]
    line = next(
        (row for row in value.splitlines() if row.startswith("BENCH_JSON ")), "BENCH_JSON " + value
    )
    figures = json.loads(line[len("BENCH_JSON ") :])
    projects = sorted({pid for run in figures["runs"] for pid in run.get("projects", [])})
    submissions = sum(run["submissions"] for run in figures["runs"])
    failed = False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM annotation_annotation WHERE project_id = ANY(%(projects)s)",
            {"projects": projects},
        )
        (stored,) = cursor.fetchone()
        print(
            f"{len(projects)} project(s), {stored} annotations stored "
            f"({submissions} submissions inside the measured windows)"
        )
        for name, sql in CHECKS.items():
            cursor.execute(sql, {"projects": projects})
            (count,) = cursor.fetchone()
            failed |= count > 0
            print(f"  {name}: {count}")
    print("guarantees held" if not failed else "GUARANTEES BROKEN")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

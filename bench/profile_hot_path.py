"""CPU cost of the annotation hot path per request, in process, with no HTTP in between.

Runs ``GET next/`` and ``POST submit/`` (plain, and ``submit/?next=1``) through Django's
WSGI handler (every middleware, DRF, token authentication) against the configured
database, one annotator on a fresh project of two-response pairwise items, and prints:

- CPU milliseconds per request (``time.process_time``: this process only, so the figure
  holds on a busy machine where wall-clock time does not);
- database statements per request;
- the PostgreSQL backend's CPU milliseconds per request (from ``/proc``, so only when the
  server runs on this machine): planning and running the statements, and the commits;
- with pyinstrument installed, the top frames of a profile of each endpoint
  (``--profile``), or the full text tree into ``--profile-dir``.

Usage (PostgreSQL; a scratch database, since it creates a project and users)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ballot_bench \\
    DJANGO_SETTINGS_MODULE=config.settings.local \\
        python bench/profile_hot_path.py --requests 300 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from bench_import import backend_cpu_seconds  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from annotation.models import Item, Membership, Project, Question, Response, Role  # noqa: E402
from annotation.services import token_create  # noqa: E402


def world(items: int) -> tuple[int, str]:
    tag = uuid.uuid4().hex[:8]
    user = get_user_model().objects.create(username=f"profile-{tag}")
    project = Project.objects.create(name=f"profile {tag}", overlap=1)
    Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
    Question.objects.create(
        project=project,
        kind="pairwise",
        name="preference",
        position=0,
        config={"allow_tie": True, "strength_scale": {"min": 1, "max": 3}},
    )
    created = Item.objects.bulk_create(
        Item(
            project=project,
            external_id=f"{tag}-{index}",
            conversation=[{"role": "user", "content": f"Question {index}"}],
        )
        for index in range(items)
    )
    Response.objects.bulk_create(
        Response(item=item, text=f"Answer {side} to {item.external_id}.", position=position)
        for item in created
        for position, side in enumerate("AB")
    )
    return project.pk, token_create(user=user, name="profile")[1]


def answers(assignment: dict) -> dict:
    ids = [r["id"] for r in assignment["item"]["responses"]]
    return {
        "answers": [
            {"question": "preference", "chosen": ids[0], "rejected": ids[1], "strength": 2}
        ],
        "time_spent_ms": 900,
    }


class Loop:
    def __init__(self, project_id: int, token: str) -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
        self.project_id = project_id
        self.current: dict | None = None

    def next(self):
        response = self.client.get(f"/api/v1/projects/{self.project_id}/next/")
        assert response.status_code == 200, response.content[:300]
        self.current = response.json()

    def submit(self, *, with_next: bool = False):
        assert self.current is not None
        url = f"/api/v1/assignments/{self.current['id']}/submit/" + ("?next=1" if with_next else "")
        response = self.client.post(
            url,
            json.dumps(answers(self.current)),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )
        assert response.status_code == 201, response.content[:300]
        self.current = response.json().get("next") if with_next else None


# Where a request's time goes, for the summary: self time by the library it is spent in,
# and time under a few named steps (outermost call only).
BUCKETS = (
    ("database driver (psycopg, waiting on PostgreSQL)", "/psycopg/"),
    ("Django ORM (building and compiling queries, model instances)", "/django/db/"),
    ("DRF (request, auth, parsing, serializers, rendering)", "/rest_framework/"),
    ("Ballot code (annotation/)", "/annotation/"),
    ("Django other (handler, middleware, test client)", "/django/"),
)
STEPS = (
    "HashedTokenAuthentication.authenticate",
    "project_get_for",
    "assignment_claim_next",
    "annotation_submit",
    "annotation_submit_and_claim_next",
    "assignment_claim_quick",
    "answers_validate",
    "validated",
    "Serializer.data",
    "ReturnDict.__init__",
    "assignment_out",
    "JSONRenderer.render",
    "TolerantJSONRenderer.render",
)


def summarise(profiler) -> dict:
    root = profiler.last_session.root_frame(trim_stem=False)
    total = root.time or 1e-9
    buckets: dict[str, float] = {}
    steps: dict[str, float] = {}

    def walk(frame, inside: frozenset) -> None:
        if frame.is_synthetic:
            return  # its time is already its parent's self time
        path = frame.file_path or ""
        label = next(
            (name for name, needle in BUCKETS if needle in path), "other (stdlib, json, ...)"
        )
        buckets[label] = buckets.get(label, 0.0) + frame.total_self_time
        qualified = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        here = inside
        if qualified in STEPS and qualified not in inside:
            steps[qualified] = steps.get(qualified, 0.0) + frame.time
            here = inside | {qualified}
        for child in frame.children:
            walk(child, here)

    walk(root, frozenset())
    return {
        "self_time_share": {
            k: round(v / total, 3) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])
        },
        "step_share": {
            k: round(v / total, 3) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])
        },
    }


def measure(loop: Loop, requests: int, profiler_cls=None, profile_dir: Path | None = None) -> dict:
    out: dict = {}
    # Warm up: imports, caches, the first lease sweep.
    for _ in range(20):
        loop.next()
        loop.submit()
    for name in ("next", "submit", "submit?next=1"):
        cpu = 0.0
        # A counting wrapper, not CaptureQueriesContext: recording SQL text would add its
        # own CPU to every statement.
        statements = [0]

        def count(execute, sql, params, many, context, statements=statements):
            statements[0] += 1
            return execute(sql, params, many, context)

        profiler = profiler_cls(interval=0.0005) if profiler_cls else None
        db_cpu = 0.0
        for _ in range(requests):
            if name == "next":
                request = loop.next
            else:
                if loop.current is None:
                    loop.next()
                request = (
                    (lambda: loop.submit(with_next=True))
                    if name == "submit?next=1"
                    else loop.submit
                )
            db_before = backend_cpu_seconds()
            with connection.execute_wrapper(count):
                t0 = time.process_time()
                if profiler:
                    profiler.start()
                request()
                if profiler:
                    profiler.stop()
                cpu += time.process_time() - t0
            db_after = backend_cpu_seconds()
            if db_before is not None and db_after is not None:
                db_cpu += db_after - db_before
            if name == "next":
                loop.submit()
        out[name] = {
            "cpu_ms": round(cpu * 1000 / requests, 2),
            "statements": round(statements[0] / requests, 2),
            "postgres_cpu_ms": round(db_cpu * 1000 / requests, 2) if db_cpu else None,
        }
        if profiler:
            text = profiler.output_text(unicode=False, color=False, show_all=False)
            out[name]["profile_head"] = "\n".join(text.splitlines()[:60])
            out[name]["summary"] = summarise(profiler)
            if profile_dir:
                profile_dir.mkdir(parents=True, exist_ok=True)
                safe = name.replace("?", "_").replace("=", "")
                (profile_dir / f"{safe}.txt").write_text(text)
                (profile_dir / f"{safe}.html").write_text(profiler.output_html())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="profile with pyinstrument")
    parser.add_argument("--profile-dir", type=Path, help="write each profile's text and HTML here")
    args = parser.parse_args(argv)
    profiler_cls = None
    if args.profile or args.profile_dir:
        from pyinstrument import Profiler

        profiler_cls = Profiler
    project_id, token = world(items=4 * args.requests + 100)
    figures = measure(Loop(project_id, token), args.requests, profiler_cls, args.profile_dir)
    print(f"{'endpoint':<16} {'CPU ms/request':>15} {'statements':>11} {'PostgreSQL CPU ms':>18}")
    for name, row in figures.items():
        db = "-" if row["postgres_cpu_ms"] is None else f"{row['postgres_cpu_ms']:.2f}"
        print(f"{name:<16} {row['cpu_ms']:>15.2f} {row['statements']:>11.1f} {db:>18}")
    for name, row in figures.items():
        if "summary" in row:
            print(f"\n--- {name}: share of profiled time ---")
            for label, share in row["summary"]["self_time_share"].items():
                print(f"  {share:>6.1%}  self time in {label}")
            for label, share in row["summary"]["step_share"].items():
                print(f"  {share:>6.1%}  under {label}")
    print(
        "PROFILE_JSON "
        + json.dumps(
            {
                k: {kk: vv for kk, vv in v.items() if kk != "profile_head"}
                for k, v in figures.items()
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

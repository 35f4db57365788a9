"""Server time of the curator's workspace pages and chart-data endpoints on a large project.

Builds (once; later runs reuse it) a project with 100,000 items, 200,000
responses, 500,000 annotations (one in twenty-five by an AI judge), a pairwise
answer and a rating on each, 200 profiled annotators and 2% gold items, in
PostgreSQL with bulk statements, then times each workspace page that exists
(quality, datasets, items, jobs) and each chart-data endpoint through Django's
test client: the server's whole request handling, no network. Each chart-data
endpoint is timed *cold* (before every request one new label goes in through the
submit service and the cache is cleared: the figures as they are computed right
after new labels) and *warm* (repeat loads); the submits' own time is printed too. A full-text search is timed when the
items explorer exists.

Usage::

    python bench/bench_dashboard.py                          # build if needed, N=5
    python bench/bench_dashboard.py --requests 10 --rebuild
    python bench/bench_dashboard.py --explorer-only           # only the items explorer rows
    DATABASE_URL=postgres://... python bench/bench_dashboard.py

Aims: median under 300 ms for every page and endpoint; search under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/ballot_dashboard_bench"
PROJECT_NAME = "bench-dashboard"
AIM_MS = 300
AIM_SEARCH_MS = 200
ANNOTATORS = 200
PER_ITEM = 5
CHART_ENDPOINTS = (
    "agreement",
    "label-distributions",
    "coverage",
    "throughput",
    "annotators",
    "profile-breakdown",
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def setup_django(database_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost")
    ensure_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def build(items: int, rebuild: bool):
    """The bench project, built with bulk statements unless one of this size exists."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import (
        Annotation,
        AnnotatorProfile,
        Item,
        Membership,
        PairwiseAnswer,
        Project,
        RatingAnswer,
        Response,
        Role,
    )
    from annotation.services import question_create

    name = f"{PROJECT_NAME}-{items}"
    User = get_user_model()
    existing = Project.objects.filter(name=name).first()
    if existing is not None and not rebuild:
        print(f"reusing project {existing.id} ({name})", flush=True)
        return existing, User.objects.get(username="bench-admin")
    if existing is not None:
        existing.delete()
    started = time.perf_counter()
    admin, _ = User.objects.get_or_create(username="bench-admin")
    admin.set_password("bench")
    admin.save()
    with transaction.atomic():
        project = Project.objects.create(name=name, overlap=PER_ITEM, created_by=admin)
        Membership.objects.create(user=admin, project=project, role=Role.ADMIN)
        preference = question_create(
            project=project,
            kind="pairwise",
            name="preference",
            config={"allow_tie": True, "strength_scale": {"min": 1, "max": 3}},
        )
        rating = question_create(
            project=project,
            kind="rating",
            name="quality",
            config={"aspects": ["helpfulness"], "scale": {"min": 1, "max": 5}},
        )
        annotators = []
        for index in range(ANNOTATORS):
            user, _ = User.objects.get_or_create(username=f"bench-annotator-{index}")
            annotators.append(user)
        Membership.objects.bulk_create(
            [Membership(user=u, project=project, role=Role.ANNOTATOR) for u in annotators],
            ignore_conflicts=True,
        )
        genders = ["woman", "man", "non-binary", None]
        ages = ["18-24", "25-34", "35-44", "45-54", "55-64", None]
        countries = ["US", "UK", "DE", "IN", "BR", "Tuvalu"]
        AnnotatorProfile.objects.filter(user__in=annotators).delete()
        AnnotatorProfile.objects.bulk_create(
            [
                AnnotatorProfile(
                    user=u,
                    gender=genders[i % len(genders)],
                    age_band=ages[i % len(ages)],
                    residence_country=countries[0 if i == 0 else (i % 5)]
                    if i != 7
                    else countries[5],
                )
                for i, u in enumerate(annotators)
            ]
        )
    print(f"  users and questions: {time.perf_counter() - started:.1f}s", flush=True)
    batch = 10_000
    topics = ["cooking", "physics", "travel", "poetry", "law", "medicine", "gardening", "finance"]
    for start in range(0, items, batch):
        with transaction.atomic():
            made = Item.objects.bulk_create(
                [
                    Item(
                        project=project,
                        external_id=f"bench-{n}",
                        conversation=[
                            {
                                "role": "user",
                                "content": f"Question {n} about {topics[n % len(topics)]}: "
                                f"how would you explain topic {n % 997} to a friend?",
                            }
                        ],
                        tags=[topics[n % len(topics)]],
                        is_gold=n % 50 == 0,
                        gold_answer={
                            "answers": [{"question": "preference", "chosen": 0, "rejected": 1}]
                        }
                        if n % 50 == 0
                        else None,
                        slots_taken=PER_ITEM,
                        is_full=True,
                    )
                    for n in range(start, min(items, start + batch))
                ]
            )
            Response.objects.bulk_create(
                [
                    Response(
                        item=item,
                        position=position,
                        model_name=f"model-{position}",
                        text=f"Answer {position} to {item.external_id}: "
                        + (
                            "a careful and friendly explanation"
                            if position == 0
                            else "a terse reply"
                        ),
                    )
                    for item in made
                    for position in (0, 1)
                ]
            )
    print(
        f"  {items} items, {2 * items} responses: {time.perf_counter() - started:.1f}s", flush=True
    )
    ids = ",".join(str(u.id) for u in annotators)
    annotation, item, response = (
        Annotation._meta.db_table,
        Item._meta.db_table,
        Response._meta.db_table,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Five distinct annotators per item (7n + 41k mod 200 differs for k = 0..4);
        # the fifth label of every fifth item is an AI judge's. Spread over 120 days.
        cursor.execute(
            f"""
            INSERT INTO {annotation} (project_id, item_id, annotator_id, judge_name, source,
                time_spent_ms, request_hash, created_at)
            SELECT %s, i.id,
                CASE WHEN k = 4 AND i.id %% 5 = 0 THEN NULL
                     ELSE (ARRAY[{ids}])[1 + ((i.id * 7 + k * 41) %% {ANNOTATORS})] END,
                CASE WHEN k = 4 AND i.id %% 5 = 0 THEN 'bench-judge' ELSE '' END,
                CASE WHEN k = 4 AND i.id %% 5 = 0 THEN 'ai' ELSE 'human' END,
                2000 + (i.id * 13 + k * 17) %% 30000, '',
                now() - ((i.id %% 120) || ' days')::interval - (k || ' hours')::interval
            FROM {item} i CROSS JOIN generate_series(0, {PER_ITEM - 1}) k
            WHERE i.project_id = %s ORDER BY i.id, k
            """,
            [project.id, project.id],
        )
        print(f"  annotations: {time.perf_counter() - started:.1f}s", flush=True)
        # Position 0 is better on two items in three; an annotator follows that 8 times in 10,
        # ties once in 10.
        cursor.execute(
            f"""
            INSERT INTO {PairwiseAnswer._meta.db_table}
                (annotation_id, question_id, chosen_id, rejected_id, tie, strength)
            SELECT a.id, %s,
                CASE WHEN ((a.item_id %% 3 <> 0) = ((a.id * 31) %% 10 < 8)) THEN r0.id ELSE r1.id END,
                CASE WHEN ((a.item_id %% 3 <> 0) = ((a.id * 31) %% 10 < 8)) THEN r1.id ELSE r0.id END,
                (a.id * 31) %% 10 = 9,
                CASE WHEN (a.id * 31) %% 10 = 9 THEN NULL ELSE 1 + a.id %% 3 END
            FROM {annotation} a
            JOIN {response} r0 ON r0.item_id = a.item_id AND r0.position = 0
            JOIN {response} r1 ON r1.item_id = a.item_id AND r1.position = 1
            WHERE a.project_id = %s
            """,
            [preference.id, project.id],
        )
        print(f"  pairwise answers: {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute(
            f"""
            INSERT INTO {RatingAnswer._meta.db_table}
                (annotation_id, question_id, response_id, aspect, value)
            SELECT a.id, %s, r0.id, 'helpfulness',
                GREATEST(1, LEAST(5, CASE WHEN a.item_id %% 3 <> 0 THEN 4 ELSE 2 END
                                      + (a.id * 7) %% 3 - 1))
            FROM {annotation} a
            JOIN {response} r0 ON r0.item_id = a.item_id AND r0.position = 0
            WHERE a.project_id = %s
            """,
            [rating.id, project.id],
        )
        print(f"  ratings: {time.perf_counter() - started:.1f}s", flush=True)
    reindex(project)
    agreement_fill(project)
    quality_fill(project)
    with connection.cursor() as cursor:
        # The bulk updates above (search documents, agreement) leave a dead row per item;
        # autovacuum would clear them and set the visibility map (index-only scans) on a
        # live database, so the bench measures that steady state rather than the bloat.
        cursor.execute("VACUUM ANALYZE")
    print(f"built project {project.id} in {time.perf_counter() - started:.1f}s", flush=True)
    return project, admin


def reindex(project) -> None:
    """Fill the explorer's search documents, which bulk inserts bypass (when the explorer exists)."""
    from django.core.management import call_command, get_commands

    if "search_reindex" not in get_commands():
        return
    started = time.perf_counter()
    call_command("search_reindex", project=project.id)
    print(f"  search index: {time.perf_counter() - started:.1f}s", flush=True)


def agreement_fill(project) -> None:
    """Store each item's agreement, which the bulk inserts above bypass."""
    from annotation.models import Item
    from annotation.services import item_agreement_refresh

    started = time.perf_counter()
    item_agreement_refresh(
        item_ids=Item.objects.filter(project=project).values_list("id", flat=True)
    )
    print(f"  agreement: {time.perf_counter() - started:.1f}s", flush=True)


def quality_fill(project) -> None:
    """Count the quality summaries, which the bulk inserts above bypass."""
    from annotation.services import quality_summaries_rebuild

    started = time.perf_counter()
    quality_summaries_rebuild(project_id=project.id)
    print(f"  quality summaries: {time.perf_counter() - started:.1f}s", flush=True)


class NewLabels:
    """Submits one real label (pairwise and rating) through the submit service, as an
    annotator would, on a random item the chosen annotator has not labelled yet; keeps
    how long each submit took."""

    def __init__(self, project) -> None:
        import random

        from annotation.models import Question

        self.project = project
        self.random = random.Random(17)
        self.questions = {q.kind: q for q in Question.objects.filter(project=project)}
        self.timings: list[float] = []

    def __call__(self) -> None:
        from datetime import timedelta

        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from annotation.models import Annotation, Assignment, Item
        from annotation.services import annotation_submit

        User = get_user_model()
        while True:
            item = Item.objects.filter(
                project=self.project, external_id=f"bench-{self.random.randrange(100_000)}"
            ).first()
            if item is None or item.is_gold:
                continue
            taken = set(Annotation.objects.filter(item=item).values_list("annotator_id", flat=True))
            user = (
                User.objects.filter(username__startswith="bench-annotator-")
                .exclude(id__in=[t for t in taken if t is not None])
                .order_by("?")
                .first()
            )
            if not Assignment.objects.filter(item=item, annotator=user).exists():
                break
        responses = list(item.responses.order_by("position").values_list("id", flat=True))
        assignment = Assignment.objects.create(
            project=self.project,
            item=item,
            annotator=user,
            leased_until=timezone.now() + timedelta(hours=1),
        )
        answers = [
            {"question": "preference", "chosen": responses[0], "rejected": responses[1]},
            {
                "question": "quality",
                "ratings": [
                    {"response": r, "aspect": "helpfulness", "value": self.random.randint(1, 5)}
                    for r in responses
                ],
            },
        ]
        started = time.perf_counter()
        annotation_submit(
            assignment_id=assignment.id,
            user=user,
            answers=answers,
            time_spent_ms=self.random.randint(2000, 30000),
        )
        self.timings.append((time.perf_counter() - started) * 1000)


def scored_job(project, admin):
    """A finished FiFA job with one PairScore per item (built once, reused), for the jobs pages."""
    import random

    from django.db import transaction
    from django.utils import timezone

    from annotation.models import Response
    from curation.models import Job, JobKind, JobStatus, PairScore

    existing = Job.objects.filter(project=project, kind=JobKind.FIFA, status="succeeded").first()
    if existing is not None:
        return existing
    started = time.perf_counter()
    rng = random.Random(11)
    responses: dict[int, list[int]] = {}
    for item_id, response_id in (
        Response.objects.filter(item__project=project)
        .order_by("item_id", "position")
        .values_list("item_id", "id")
        .iterator(chunk_size=20_000)
    ):
        responses.setdefault(item_id, []).append(response_id)
    with transaction.atomic():
        job = Job.objects.create(
            project=project,
            kind=JobKind.FIFA,
            status=JobStatus.SUCCEEDED,
            progress=1.0,
            created_by=admin,
            finished_at=timezone.now(),
            result={"pairs": len(responses), "requested": len(responses) // 2},
        )
        rows = []
        for item_id, (chosen, rejected, *_) in responses.items():
            kept = rng.random() < 0.5
            rows.append(
                PairScore(
                    job=job,
                    item_id=item_id,
                    pair_key=str(item_id),
                    kind="pairwise",
                    question="preference",
                    chosen_response_id=chosen,
                    rejected_response_id=rejected,
                    margin=rng.gauss(0.3 if kept else 0.0, 1.0),
                    prob_chosen=rng.random(),
                    quality=rng.random(),
                    diversity=rng.gauss(0, 1),
                    importance=rng.gauss(1 if kept else 0, 1),
                    kept=kept,
                    suspect=rng.random() < 0.05,
                    suspect_confidence=rng.random(),
                )
            )
        PairScore.objects.bulk_create(rows, batch_size=5000)
    print(f"  scored job {job.id}: {time.perf_counter() - started:.1f}s", flush=True)
    return job


def measure(client, url: str, requests: int, before=None) -> list[float]:
    timings = []
    for _ in range(requests):
        if before is not None:
            before()
        started = time.perf_counter()
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}: {response.content[:300]!r}")
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5, help="timed requests per page/endpoint")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument(
        "--reindex", action="store_true", help="refill the search index of a reused project"
    )
    parser.add_argument(
        "--explorer-only",
        action="store_true",
        help="time only the items explorer's filters, sorts and API (no pages, jobs, charts)",
    )
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench_dashboard needs PostgreSQL (--database-url postgres://...)")
    setup_django(args.database_url)

    from django.core.cache import cache
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from annotation.models import Annotation

    project, admin = build(args.items, args.rebuild)
    if args.reindex:
        reindex(project)
    annotations = Annotation.objects.filter(project=project).count()
    print(f"project {project.id}: {args.items} items, {annotations} annotations\n", flush=True)
    client = Client()
    client.force_login(admin)
    rows: list[tuple[str, str, list[float]]] = []
    for name in () if args.explorer_only else ("quality", "dataset-list", "item-list", "job-list"):
        try:
            url = reverse(f"frontend:{name}", kwargs={"project_id": project.id})
        except NoReverseMatch:
            continue
        measure(client, url, 1)  # warm-up: imports, template compilation
        rows.append((f"page {name}", "", measure(client, url, args.requests)))
    try:
        if args.explorer_only:
            raise NoReverseMatch
        # The jobs pages and the job-charts endpoint, on a FiFA job scoring every item.
        job = scored_job(project, admin)
        detail = reverse("frontend:job-detail", kwargs={"project_id": project.id, "job_id": job.id})
        charts = f"/api/v1/projects/{project.id}/jobs/{job.id}/charts/"
        for label, target in (
            ("page job-detail (fifa)", detail),
            ("api jobs/charts (fifa)", charts),
        ):
            measure(client, target, 1)
            rows.append((label, "", measure(client, target, args.requests)))
    except NoReverseMatch:
        pass
    new_label = NewLabels(project)

    def after_a_new_label() -> None:
        new_label()
        cache.clear()

    for name in () if args.explorer_only else CHART_ENDPOINTS:
        url = f"/api/v1/projects/{project.id}/quality/{name}/"
        rows.append(
            (f"api quality/{name}", "cold", measure(client, url, args.requests, after_a_new_label))
        )
        rows.append((f"api quality/{name}", "warm", measure(client, url, args.requests)))
    if new_label.timings:
        rows.append(("submit (service, summaries kept)", "", new_label.timings))
    search_rows = []
    try:
        url = reverse("frontend:item-list", kwargs={"project_id": project.id})
        search_url = f"{url}?q=topic+42+friend"
        if not args.explorer_only:
            search_rows.append(
                ("search items (q=topic 42 friend)", "", measure(client, search_url, args.requests))
            )
        # The explorer's filters (URL query strings) and its API.
        explore = f"/api/v1/projects/{project.id}/explore/"
        for label, target in (
            ("page items: last page", f"{url}?page=2000"),
            (
                "page items: tag, gold, counts, -priority",
                f"{url}?tag=physics&gold=no&source=ai&annotations_min=5&sort=-priority",
            ),
            ("page items: agreement <= 0.6", f"{url}?agreement_max=0.6"),
            ("page items: sort by agreement", f"{url}?sort=-agreement"),
            ("page items: search + sort by annotations", f"{url}?q=cooking&sort=-annotations"),
            ("api explore: tag + page_size 100", f"{explore}?tag=law&page_size=100"),
        ):
            measure(client, target, 1)
            rows.append((label, "", measure(client, target, args.requests)))
        if not args.explorer_only:
            search_rows.append(
                (
                    "search api explore (q=physics friend)",
                    "",
                    measure(client, f"{explore}?q=physics+friend", args.requests),
                )
            )
    except NoReverseMatch:
        pass

    print(f"{'page / endpoint':<42} {'cache':<6} {'median ms':>10} {'p95 ms':>9}  aim")
    for label, mode, timings in rows + search_rows:
        aim = AIM_SEARCH_MS if label.startswith("search") else AIM_MS
        median = statistics.median(timings)
        verdict = "ok" if median < aim else "OVER"
        print(
            f"{label:<42} {mode:<6} {median:>10.1f} {percentile(timings, 0.95):>9.1f}  "
            f"<{aim} {verdict}"
        )


if __name__ == "__main__":
    main()

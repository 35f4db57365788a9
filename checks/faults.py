"""Faults (issue 15, point 5): break the parts of the running stack and count what survived.

- ``kill -9`` the Celery pool process in the middle of a job of every kind in the job
  registry: each job is redelivered, claimed again once its heartbeat is stale, and
  finishes with no duplicate rows;
- restart Redis during a job and during a burst of submissions: both recover, no
  submission is lost;
- restart PostgreSQL during a burst of submissions: the errors are the JSON error
  shape (503 with Retry-After, never an HTML 500), and the clients' retries with their
  idempotency keys land exactly once;
- fill the storage volume during an export: the export fails cleanly and leaves no
  dataset version and no files behind.

Each part builds its own project (the attacked world is left alone).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from checks.core import Context, Figure

SECTION = "faults"
WORDS = [
    "model",
    "answer",
    "helpful",
    "harmless",
    "honest",
    "polite",
    "careful",
    "detailed",
    "brief",
    "clear",
    "wrong",
    "vague",
    "rude",
    "unsafe",
    "kind",
    "precise",
    "friendly",
    "curt",
    "thorough",
    "lazy",
    "safe",
    "risky",
    "calm",
    "formal",
    "casual",
]
PHRASE = "I truly hope this helps you."
JOB_TIMEOUT = 150.0
# How long a job runs, its row held, before its worker is killed: it computes until its
# next write (progress, heartbeat, results) and waits there.
KILL_AFTER_SECONDS = 1.5
# The full disk under an export (its rows take several times this).
FULL_DISK_BYTES = 32 * 1024


def run(ctx: Context) -> list[Figure]:
    if ctx.stack is None:
        return [
            Figure(SECTION, "faults", 0, 0, detail="not run: needs the stack (python -m checks)")
        ]
    figures = [killed_workers(ctx)]
    figures.append(redis_restart_during_job(ctx))
    figures.append(burst_with_restart(ctx, "redis"))
    figures.append(burst_with_restart(ctx, "postgres"))
    figures.append(full_disk_during_export(ctx))
    return figures


# --- threads ----------------------------------------------------------------------------------


@dataclass
class _Daemon:
    thread: threading.Thread
    errors: list[BaseException]


def _start(*calls: Callable[[], Any]) -> list[_Daemon]:
    """Run each call in a daemon thread: on Ctrl-C the orchestrator stops the stack at
    once instead of waiting for them (a thread pool's exit would)."""
    from django.db import connection

    daemons = []
    for call in calls:
        errors: list[BaseException] = []

        def body(call=call, errors=errors) -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
                errors.append(exc)
            finally:
                connection.close()

        daemon = _Daemon(threading.Thread(target=body, daemon=True), errors)
        daemon.thread.start()
        daemons.append(daemon)
    return daemons


def _join(daemons: list[_Daemon]) -> None:
    for daemon in daemons:
        daemon.thread.join()
    for daemon in daemons:
        if daemon.errors:
            raise daemon.errors[0]


# --- the data ---------------------------------------------------------------------------------


def _sentence(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + 3 * i + i * i) % len(WORDS)] for i in range(words))


def _rows(count: int, tag: str) -> list[dict[str, Any]]:
    """Native import rows: two responses, labelled by two of six annotators with profiles
    (US or GB), a phrase planted in every third chosen response, gold every fourth."""
    annotators = [f"{tag}-{country}-{i}" for country in ("us", "gb") for i in range(3)]
    rows = []
    for i in range(count):
        chosen = f"Good answer {i}: {_sentence(i + 1, 12)}."
        if i % 3 == 0:
            chosen = f"{chosen} {PHRASE}"
        rejected = f"Weak answer {i}: {_sentence(i + 2, 9)}."
        first = i % 2 == 0
        texts = [chosen, rejected] if first else [rejected, chosen]
        pick = 0 if first else 1
        labels = []
        for who in (annotators[i % 3], annotators[3 + (i + 1) % 3], annotators[(i + 1) % 3]):
            # The second US annotator disagrees on planted pairs: reliability has work to do.
            choice = 1 - pick if (who.endswith("us-1") and i % 3 == 0) else pick
            labels.append(
                {
                    "annotator": who,
                    "answers": [
                        {"question": "preference", "chosen": choice, "rejected": 1 - choice}
                    ],
                }
            )
        row: dict[str, Any] = {
            "external_id": f"{tag}-{i}",
            "prompt": f"Question {i}: {_sentence(i, 10)}?",
            "responses": [{"text": t} for t in texts],
            "annotations": labels,
        }
        if i % 4 == 0:
            row["is_gold"] = True
            row["gold_answer"] = {
                "answers": [{"question": "preference", "chosen": pick, "rejected": 1 - pick}]
            }
        rows.append(row)
    return rows


def _project(tag: str, *, items: int, annotators: int = 0):
    """A project with one pairwise question and ``items`` labelled items; its admin;
    and ``annotators`` extra annotator members with API tokens (for bursts)."""
    from annotation.models import AnnotatorProfile, Membership, Role
    from annotation.services import items_import, question_create, token_create
    from tests.factories import ProjectFactory, UserFactory

    owner = UserFactory(username=f"{tag}-owner")
    project = ProjectFactory(name=f"Faults {tag}", created_by=owner, overlap=1)
    Membership.objects.create(user=owner, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference", config={})
    if items:
        items_import(
            project=project, lines=[json.dumps(r) for r in _rows(items, tag)], fmt="native"
        )
        from django.contrib.auth import get_user_model

        for user in get_user_model().objects.filter(username__startswith=f"imported-{tag}-"):
            country = "US" if "-us-" in user.username else "GB"
            AnnotatorProfile.objects.update_or_create(
                user=user,
                defaults={
                    "residence_country": country,
                    "age_band": "25-34",
                    "languages": [{"language": "en", "proficiency": "native"}],
                    "stated_preferences": {"safety": 80 if country == "GB" else 20},
                },
            )
    tokens = []
    for i in range(annotators):
        user = UserFactory(username=f"{tag}-annotator-{i}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        tokens.append(token_create(user=user, name="faults")[1])
    return owner, project, tokens


# --- jobs ------------------------------------------------------------------------------------


def _wait_job(job_id: int, until: Callable[[Any], bool], timeout: float, interval: float = 0.1):
    from curation.models import Job

    deadline = time.monotonic() + timeout
    while True:
        job = Job.objects.get(pk=job_id)
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(interval)


def _terminal(job) -> bool:
    from curation.models import TERMINAL

    return job.status in TERMINAL


def _describe(job) -> str:
    return (
        f"job {job.pk} {job.kind}: {job.status} attempts={job.attempts} "
        f"progress={job.progress:.2f} {job.message[:80]!r} error={job.error[-300:]!r}"
    )


def _job_relations() -> list[tuple[Any, str]]:
    """(model, field name) of every foreign key to Job in the app, hidden ones included
    (judge verdicts and taggings point at their job without a reverse accessor)."""
    from django.apps import apps

    from curation.models import Job

    return [
        (model, f.name)
        for model in apps.get_models()
        for f in model._meta.concrete_fields
        if f.is_relation and f.related_model is Job and model is not Job
    ]


def job_rows(job) -> dict[str, int]:
    """Rows that point at ``job``, per model."""
    return {
        model.__name__: model._default_manager.filter(**{name: job}).count()
        for model, name in _job_relations()
    }


def duplicate_rows(job) -> dict[str, int]:
    """Rows pointing at ``job`` that repeat another such row in every column but the
    key and the timestamps: what a rerun that forgot to clear the first run leaves."""
    from django.db import models as m
    from django.db.models import Count

    skip = {"id", "created_at", "updated_at", "heartbeat_at", "finished_at"}
    out: dict[str, int] = {}
    for model, name in _job_relations():
        columns = [
            f.attname
            for f in model._meta.concrete_fields
            if f.attname not in skip and not isinstance(f, m.BinaryField)
        ]
        groups = (
            model._default_manager.filter(**{name: job})
            .values(*columns)
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        extra = sum(g["n"] - 1 for g in groups)
        if extra:
            out[model.__name__] = extra
    return out


def expected_rows(job) -> list[str]:
    """Kind-specific counts that must come out exactly (a problem per line)."""
    from annotation.models import Annotation, Item, Source
    from curation.models import (
        Artifact,
        DatasetVersion,
        ItemPosterior,
        JobShard,
        PairScore,
        RoutingDecision,
    )
    from curation.storage import absolute

    problems: list[str] = []
    items = Item.objects.filter(project=job.project_id).count()

    def expect(what: str, got: int, want: int) -> None:
        if got != want:
            problems.append(f"{what}: {got}, expected {want}")

    if job.kind == "embed":
        expect("JobShard", JobShard.objects.filter(job=job).count(), job.shards_total)
        expect(
            "embeddings artifact", Artifact.objects.filter(job=job, kind="embeddings").count(), 1
        )
    elif job.kind in ("fifa", "suspects"):
        expect("PairScore", PairScore.objects.filter(job=job).count(), int(job.result["pairs"]))
    elif job.kind == "reliability":
        expect("ItemPosterior", ItemPosterior.objects.filter(job=job).count(), items)
    elif job.kind == "route":
        expect(
            "RoutingDecision",
            RoutingDecision.objects.filter(job=job).count(),
            int(job.result["items"]),
        )
    elif job.kind == "export":
        expect("DatasetVersion", DatasetVersion.objects.filter(job=job).count(), 1)
        recorded = {absolute(a.path) for a in Artifact.objects.filter(job=job)}
        folder = next(iter(recorded)).parent if recorded else None
        on_disk = {p for p in folder.rglob("*") if p.is_file()} if folder else set()
        if on_disk - recorded:
            problems.append(
                f"files no artifact records: {sorted(p.name for p in on_disk - recorded)}"
            )
    elif job.kind == "label-ai":
        ai = Annotation.objects.filter(project=job.project_id, source=Source.AI)
        per_item = ai.values("item", "judge_name").distinct().count()
        expect("AI annotations (one per item and judge)", ai.count(), per_item)
    return problems


@dataclass
class KillOutcome:
    kind: str
    queue: str
    held: bool = False
    why: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


def kill_mid_job(ctx: Context, *, project, owner, kind: str, params: dict) -> KillOutcome:
    """Create a job, kill its worker's pool process once it runs, and check how it ends."""
    from django.db import transaction

    from curation.jobs.registry import kind_get
    from curation.models import Job
    from curation.services.jobs import job_create

    queue = kind_get(kind).queue
    outcome = KillOutcome(kind=kind, queue=queue)
    started = time.monotonic()
    job = job_create(project=project, kind=kind, params=params, user=owner)
    job = _wait_job(job.pk, lambda j: _terminal(j) or j.status == "running", 90, interval=0.02)
    if job.status != "running":
        outcome.why = f"not caught running: {_describe(job)}"
        return outcome
    lost_before = ctx.stack.worker_log(queue).count("WorkerLostError")
    # Hold the job's row: the worker's next progress report or heartbeat (or its final
    # write) waits on it, so the kill lands in the middle of the run however fast the
    # kind is. Killing it drops its connection, which rolls back what it had not committed.
    with transaction.atomic():
        held_row = Job.objects.select_for_update().get(pk=job.pk)
        if held_row.status != "running":
            outcome.why = f"finished before the kill: {_describe(held_row)}"
            return outcome
        time.sleep(KILL_AFTER_SECONDS)
        outcome.metrics["killed_after_s"] = round(time.monotonic() - started, 1)
        ctx.stack.kill_worker(queue)
        killed = time.monotonic()
    job = _wait_job(job.pk, _terminal, timeout=JOB_TIMEOUT, interval=0.25)
    interrupted = ctx.stack.worker_log(queue).count("WorkerLostError") > lost_before
    outcome.metrics.update(
        recovered_in_s=round(time.monotonic() - killed, 1),
        attempts=job.attempts,
        rows=job_rows(job),
    )
    problems = []
    sharded = kind_get(kind).shards is not None
    if job.status != "succeeded":
        problems.append(_describe(job))
    elif not interrupted:
        problems.append("the worker logged no WorkerLostError: the kill hit no running task")
    elif not sharded and job.attempts < 2:
        # Sharded kinds retry the shard's task, not the job's claim.
        problems.append(f"attempts={job.attempts}: the job was not claimed again")
    if job.status == "succeeded":
        duplicates = duplicate_rows(job)
        if duplicates:
            problems.append(f"duplicate rows: {duplicates}")
        problems += expected_rows(job)
    outcome.held = not problems
    outcome.why = "; ".join(problems)
    return outcome


def _kind_params(kind: str, judge_id: int | None = None) -> dict[str, Any]:
    return {
        "embed": {"shards": 2},
        "reward": {"folds": 2, "epochs": 20},
        "fifa": {},
        "suspects": {},
        "explain": {"n_features": 8, "k_active": 2, "max_epochs": 5, "min_group_judgements": 5},
        "route": {"budget": 0.25, "strategy": "error", "folds": 3, "clusters": 2},
        "reliability": {},
        "export": {"format": "trl_preference", "outputs": ["jsonl"]},
        "label-ai": {"judge": judge_id, "batch_items": 8},
    }[kind]


def killed_workers(ctx: Context) -> Figure:
    """Every kind of the registry, one kill each: gpu kinds and default kinds run on
    their own workers at once (label_ai judges with the reward job's model, route routes
    on label_ai's labels, so those two wait for what they read)."""
    from django.db import connection

    from curation.jobs.registry import AVAILABLE
    from curation.judges.services import judge_create

    owner, project, _ = _project(f"kill{uuid.uuid4().hex[:6]}", items=48 if ctx.quick else 72)
    kinds = list(AVAILABLE)
    known = {
        "embed",
        "reward",
        "fifa",
        "suspects",
        "explain",
        "route",
        "reliability",
        "export",
        "label-ai",
    }
    outcomes: dict[str, KillOutcome] = {}
    for kind in kinds:
        if kind not in known:
            outcomes[kind] = KillOutcome(
                kind, AVAILABLE[kind].queue, why="no input for this kind yet"
            )
    reward_done, labels_done = threading.Event(), threading.Event()
    judge: dict[str, int] = {}

    def one(kind: str, params: dict | None = None) -> None:
        if kind not in kinds:
            return
        try:
            outcomes[kind] = kill_mid_job(
                ctx, project=project, owner=owner, kind=kind, params=params or _kind_params(kind)
            )
        except Exception as exc:  # noqa: BLE001 - one kind's crash is that kind's failure
            outcomes[kind] = KillOutcome(
                kind, AVAILABLE[kind].queue, why=f"{type(exc).__name__}: {exc}"
            )

    def gpu_line() -> None:
        try:
            one("embed")
            one("reward")
            reward_done.set()
            for kind in ("fifa", "suspects", "explain"):
                one(kind)
            labels_done.wait(timeout=240)
            one("route")
        finally:
            reward_done.set()
            connection.close()

    def default_line() -> None:
        try:
            one("reliability")
            one("export")
            reward_done.wait(timeout=240)
            if "label-ai" in kinds:
                try:
                    made = judge_create(
                        project=project,
                        user=owner,
                        data={"name": "reward-judge", "backend": "reward"},
                    )
                    judge["id"] = made.id
                except Exception as exc:  # noqa: BLE001
                    outcomes["label-ai"] = KillOutcome("label-ai", "default", why=f"judge: {exc}")
                else:
                    one("label-ai", _kind_params("label-ai", judge["id"]))
        finally:
            labels_done.set()
            connection.close()

    started = time.monotonic()
    _join(_start(gpu_line, default_line))
    missing = [k for k in kinds if k not in outcomes]
    for kind in missing:
        outcomes[kind] = KillOutcome(kind, AVAILABLE[kind].queue, why="not run")
    failed = [o for o in outcomes.values() if not o.held]
    recovered = [o.metrics.get("recovered_in_s", 0) for o in outcomes.values() if o.held]
    return Figure(
        SECTION,
        "kill -9 worker mid-job, every job kind",
        len(kinds),
        len(kinds) - len(failed),
        lost=sum(1 for o in failed if "duplicate" in o.why or "expected" in o.why),
        detail=f"{len(kinds) - len(failed)}/{len(kinds)} kinds: killed {KILL_AFTER_SECONDS} s into "
        f"the run, retried to success, rows exact; recovery max {max(recovered, default=0):.0f} s "
        f"(stale after {ctx.stack.env['BALLOT_JOB_STALE_SECONDS']} s)",
        metrics={
            "seconds": round(time.monotonic() - started, 1),
            "kinds": {
                o.kind: {"queue": o.queue, "held": o.held, **o.metrics} for o in outcomes.values()
            },
        },
        failures=[f"{o.kind}: {o.why}" for o in failed],
    )


def redis_restart_during_job(ctx: Context) -> Figure:
    from curation.services.jobs import job_create

    owner, project, _ = _project(f"redisjob{uuid.uuid4().hex[:6]}", items=40)
    job = job_create(project=project, kind="fifa", params={}, user=owner)
    job = _wait_job(job.pk, lambda j: _terminal(j) or j.status == "running", 90, 0.05)
    caught = job.status == "running"
    ctx.stack.restart_redis(down_seconds=2)
    job = _wait_job(job.pk, _terminal, JOB_TIMEOUT, 0.25)
    held = caught and job.status == "succeeded"
    problems = (
        []
        if held
        else [("caught running; " if caught else "not caught running; ") + _describe(job)]
    )
    if held:
        problems = expected_rows(job) + [f"duplicate rows: {d}" for d in [duplicate_rows(job)] if d]
        held = not problems
    return Figure(
        SECTION,
        "Redis restarted during a job",
        1,
        int(held),
        lost=int(not held and job.status == "succeeded"),
        detail=f"fifa job {job.status} after a 2 s Redis outage, attempts {job.attempts}",
        metrics={"attempts": job.attempts, "rows": job_rows(job)},
        failures=problems,
    )


# --- bursts of submissions -------------------------------------------------------------------


@dataclass
class BurstTally:
    confirmed: dict[str, int] = field(default_factory=dict)  # idempotency key -> annotation id
    attempts: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    unclean: list[str] = field(default_factory=list)  # 5xx not in the JSON error shape
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, status: str) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def _clean_error(response: httpx.Response) -> bool:
    """A 5xx in the JSON error shape ({"error", "detail", ...}), not an HTML page."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body and "detail" in body


def _call(client: httpx.Client, tally: BurstTally, method: str, url: str, deadline: float, **kw):
    """One request, retried on connection errors and 5xx (as a client should, with the
    same Idempotency-Key) until ``deadline``; returns the final response or None."""
    pause = 0.2
    while time.monotonic() < deadline:
        with tally.lock:
            tally.attempts += 1
        try:
            response = client.request(method, url, **kw)
        except httpx.TransportError as exc:
            tally.saw(type(exc).__name__)
        else:
            tally.saw(str(response.status_code))
            if response.status_code < 500:
                return response
            if not _clean_error(response):
                with tally.lock:
                    tally.unclean.append(
                        f"{method} {url} -> {response.status_code} "
                        f"{response.headers.get('content-type')}: {response.text[:120]!r}"
                    )
        with tally.lock:
            tally.retries += 1
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)
    return None


def _annotator(
    ctx: Context, token: str, project_id: int, tally: BurstTally, stop_at: float
) -> None:
    """Lease, submit with an idempotency key, repeat until nothing is left or time is up."""
    deadline = stop_at + 60  # retries of the last submissions may run past the burst
    with httpx.Client(
        base_url=f"{ctx.base_url}/api/v1",
        headers={"Authorization": f"Token {token}"},
        timeout=15,
    ) as client:
        while time.monotonic() < stop_at:
            response = _call(client, tally, "GET", f"/projects/{project_id}/next/", deadline)
            if response is None or response.status_code == 204:
                return
            if response.status_code != 200:
                tally.gave_up.append(f"next: {response.status_code} {response.text[:100]}")
                return
            assignment = response.json()
            first, second = (r["id"] for r in assignment["item"]["responses"][:2])
            key = f"faults-{uuid.uuid4()}"
            body = {
                "answers": [{"question": "preference", "chosen": first, "rejected": second}],
                "time_spent_ms": 1000,
            }
            response = _call(
                client,
                tally,
                "POST",
                f"/assignments/{assignment['id']}/submit/",
                deadline,
                json=body,
                headers={"Idempotency-Key": key},
            )
            if response is None:
                tally.gave_up.append(f"submit {key}: no answer before the deadline")
                return
            if response.status_code in (200, 201):
                with tally.lock:
                    tally.confirmed[key] = response.json()["annotation"]
            else:
                tally.gave_up.append(f"submit {key}: {response.status_code} {response.text[:100]}")


def burst_with_restart(ctx: Context, part: str) -> Figure:
    """Annotators submit as fast as they can; ``part`` (redis or postgres) restarts in
    the middle. Every confirmed submission must be in the database exactly once."""
    from annotation.models import Annotation

    clients = 6
    burst_seconds = 8 if ctx.quick else 14
    tag = f"burst{part}{uuid.uuid4().hex[:6]}"
    owner, project, tokens = _project(tag, items=0, annotators=clients)
    names = [f"{tag}-annotator-{i}" for i in range(clients)]
    from annotation.services import items_import

    rows = [
        {
            "external_id": f"b-{i}",
            "prompt": f"Question {i}: {_sentence(i, 8)}?",
            "chosen": f"Good {i}: {_sentence(i + 1, 8)}.",
            "rejected": f"Weak {i}: {_sentence(i + 2, 8)}.",
        }
        for i in range(3000)
    ]
    items_import(project=project, lines=[json.dumps(r) for r in rows], fmt="trl")
    tally = BurstTally()
    stop_at = time.monotonic() + burst_seconds
    threads = _start(
        *(lambda t=token: _annotator(ctx, t, project.id, tally, stop_at) for token in tokens)
    )
    time.sleep(burst_seconds / 3)
    before = len(tally.confirmed)
    restart_started = time.monotonic()
    if part == "redis":
        ctx.stack.restart_redis(down_seconds=2)
    else:
        ctx.stack.restart_postgres(down_seconds=2, mode="fast")
    outage = time.monotonic() - restart_started
    _join(threads)
    from django.db import close_old_connections, connection

    close_old_connections()
    connection.close()  # the restart may have cut this process's connection too
    keys = list(tally.confirmed)
    stored = dict(
        Annotation.objects.filter(project=project, idempotency_key__in=keys).values_list(
            "idempotency_key", "id"
        )
    )
    # The burst's annotators only: the imported pairs carry annotations of their own.
    total = Annotation.objects.filter(project=project, annotator__username__in=names).count()
    lost = [k for k in keys if k not in stored]
    mismatched = [k for k in keys if k in stored and stored[k] != tally.confirmed[k]]
    # Rows nobody was told about: a submission whose client gave up after it landed.
    unconfirmed = total - len(stored)
    problems = (
        [f"confirmed but not stored: {k}" for k in lost[:3]]
        + [f"stored under another id: {k}" for k in mismatched[:3]]
        + tally.unclean[:3]
        + tally.gave_up[:3]
    )
    errors = {s: n for s, n in tally.statuses.items() if s not in ("200", "201")}
    return Figure(
        SECTION,
        f"{'Redis' if part == 'redis' else 'PostgreSQL'} restarted during a submission burst",
        len(keys) + len(tally.gave_up),
        len(keys) - len(lost) - len(mismatched),
        lost=len(lost) + len(mismatched) + len(tally.unclean),
        detail=f"{len(keys)} confirmed, {len(stored)} stored once, {unconfirmed} unconfirmed; "
        f"{sum(errors.values())} errors during the {outage:.1f} s restart, "
        f"{len(tally.unclean)} not clean JSON",
        metrics={
            "confirmed_before_restart": before,
            "attempts": tally.attempts,
            "retries": tally.retries,
            "statuses": tally.statuses,
            "restart_seconds": round(outage, 2),
            "annotations_in_db": total,
        },
        failures=problems,
    )


# --- a full disk -----------------------------------------------------------------------------


def full_disk_during_export(ctx: Context) -> Figure:
    """The export's disk fills up: it must fail with a reason and leave no version and
    no files. The full disk is a tiny tmpfs mounted on the export's folder (the workers
    see it); where mounting is not allowed (no root, an unprivileged container) the
    default worker is restarted with RLIMIT_FSIZE instead. The figure says which.
    ``BALLOT_CHECK_FULL_DISK=rlimit`` (or ``ctx.options["full_disk"]``) picks the latter."""
    from django.conf import settings

    from checks.stack import StackError
    from curation.models import Artifact, DatasetVersion
    from curation.services.jobs import job_create

    owner, project, _ = _project(f"disk{uuid.uuid4().hex[:6]}", items=240)
    folder = Path(settings.BALLOT_STORAGE_ROOT) / "projects" / str(project.id) / "datasets"
    mode = ctx.options.get("full_disk") or os.environ.get("BALLOT_CHECK_FULL_DISK", "tmpfs")
    how = ""
    if mode == "tmpfs":
        try:
            ctx.stack.mount_small_disk(folder, FULL_DISK_BYTES)
            how = f"{FULL_DISK_BYTES // 1024} KiB tmpfs under the export"
        except StackError as exc:
            how = f"mount refused ({str(exc)[:60]}); "
    if "tmpfs" not in how:
        ctx.stack.start_worker("default", max_file_bytes=FULL_DISK_BYTES)
        how += f"RLIMIT_FSIZE {FULL_DISK_BYTES // 1024} KiB on the default worker"
    try:
        job = job_create(
            project=project,
            kind="export",
            params={"format": "trl_preference", "outputs": ["jsonl", "parquet"]},
            user=owner,
        )
        job = _wait_job(job.pk, _terminal, JOB_TIMEOUT, 0.25)
        versions = DatasetVersion.objects.filter(project=project).count()
        artifacts = Artifact.objects.filter(job=job).count()
        leftovers = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    finally:
        if "tmpfs" in how:
            ctx.stack.unmount(folder)
        else:
            ctx.stack.stop_worker("default")
            ctx.stack.start_worker("default")
    problems = []
    if job.status != "failed":
        problems.append(f"the export did not fail: {_describe(job)}")
    if not job.error.strip():
        problems.append("failed without a reason")
    if versions or artifacts:
        problems.append(f"left {versions} dataset version(s) and {artifacts} artifact row(s)")
    if leftovers:
        problems.append(f"left files: {leftovers[:5]}")
    reason = job.error.strip().splitlines()[-1][:80] if job.error.strip() else "-"
    return Figure(
        SECTION,
        "storage full during an export",
        1,
        int(not problems),
        lost=versions + artifacts + len(leftovers),
        detail=f"{how}: {job.status} ({reason}); {versions} versions, {len(leftovers)} files left",
        metrics={"error": job.error[-500:], "attempts": job.attempts, "simulated_with": how},
        failures=problems,
    )

"""Load: 50 annotators for two minutes against the app, with curation and export jobs meanwhile.

``run(ctx)`` seeds a project of its own (items for the whole run, 50 annotators with
tokens), runs one thread per annotator (``checks.loadgen``) for
``ctx.options["load_seconds"]`` (120; ``ctx.quick``: 10 s, 8 annotators), and meanwhile
launches through the API a FiFA job on a small labelled project and two dataset
exports of the load project. Then it compares what the clients were told with what
the database holds: every confirmed submission stored once, under its annotator and
with its answer, and nothing stored that no client saw confirmed.

Soak (``ctx.options["soak_minutes"]``, run by hand): the same loop for that long, the
jobs repeated every 5 minutes, items imported as they run low, and
``ctx.stack.process_rss()`` sampled every 30 s. The rule is ``SOAK_RULE``.

Other options: ``load_clients`` (50), ``load_jobs`` (the kinds launched meanwhile:
``("fifa", "export")``; the pytest live server runs jobs in the request, so its test
launches exports only).
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from checks.core import Context, Figure
from checks.loadgen import (
    REQUEST_TIMEOUT_S,
    Confirmation,
    Connection,
    Tally,
    annotate,
    loopback_address,
)

SECTION = "load"
CLIENTS, QUICK_CLIENTS = 50, 8
SECONDS, QUICK_SECONDS = 120, 10
OVERLAP = 2
# Annotators arrive over the first seconds rather than in one burst of connects.
RAMP_S = 5.0
# Items seeded up front: enough for this many submissions/s over the whole run (2 cores
# serve well under it). A feeder imports more if the clients still come close to the end.
SEED_RATE_PER_S = 120
FEED_CHECK_S = 5.0
JOB_GRACE_S = 120.0
JOB_POLL_S = 2.0
FIFA_PAIRS = 40
# Small enough to train in seconds on a CPU; embedding 120 short texts dominates.
FIFA_PARAMS = {"folds": 2, "epochs": 20, "hidden": 16}
JOB_KINDS = ("fifa", "export")
JOB_PERIOD_S = 300.0
RSS_INTERVAL_S = 30.0
MIB = 1024 * 1024
SOAK_RULE = (
    "after warm-up (the first third of the run, at most 10 min), a process fails when the "
    "median of its last 3 RSS samples exceeds the median of its first 3 by more than "
    "max(32 MiB, 10%); the sum over all processes by more than max(64 MiB, 10%)"
)


# --- seeding --------------------------------------------------------------------------


@dataclass
class Seeded:
    project_id: int
    curation_project_id: int
    admin_token: str
    annotators: list[tuple[int, str]]  # (user id, token)
    items: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _item_lines(tag: str, start: int, count: int) -> list[str]:
    return [
        json.dumps(
            {
                "external_id": f"load-{tag}-{n}",
                "prompt": f"Question {n}: which answer explains load test {tag} better?",
                "responses": [f"Answer one to {n}.", f"Answer two to {n}, a little longer."],
            }
        )
        for n in range(start, start + count)
    ]


def _pair_lines(tag: str) -> list[str]:
    # Distinct prompts (folds group near-duplicates) with a clear better answer.
    topics = ["tides", "rust", "bread", "orbits", "vaccines", "taxes", "chess", "glaciers"]
    lines = []
    for n in range(FIFA_PAIRS):
        topic = topics[n % len(topics)]
        lines.append(
            json.dumps(
                {
                    "id": f"pair-{tag}-{n}",
                    "prompt": f"Explain {topic} to a child, version {n} ({tag}).",
                    "chosen": f"{topic.capitalize()} work like this: a clear, kind step {n}.",
                    "rejected": f"No. {n}",
                }
            )
        )
    return lines


def seed(*, tag: str, clients: int, items: int) -> Seeded:
    """The load project (one pairwise question, overlap 2, ``items`` items, ``clients``
    annotators with tokens) and a small labelled project for the FiFA job."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotation.models import Membership, Role
    from annotation.services import items_import, project_create, token_create

    users = get_user_model()
    admin = users.objects.create(username=f"load-admin-{tag}", password=make_password(None))
    project = project_create(
        user=admin,
        name=f"Load {tag}",
        overlap=OVERLAP,
        questions=[{"kind": "pairwise", "name": "preference"}],
    )
    items_import(project=project, lines=_item_lines(tag, 0, items), fmt="native")
    # Unusable passwords: the clients use tokens, and hashing 50 passwords costs seconds.
    annotators = users.objects.bulk_create(
        [users(username=f"load-{tag}-{n}", password=make_password(None)) for n in range(clients)]
    )
    Membership.objects.bulk_create(
        [Membership(user=u, project=project, role=Role.ANNOTATOR) for u in annotators]
    )
    curation = project_create(user=admin, name=f"Load curation {tag}")
    items_import(project=curation, lines=_pair_lines(tag), fmt="trl")
    return Seeded(
        project_id=project.id,
        curation_project_id=curation.id,
        admin_token=token_create(user=admin, name="load-admin")[1],
        annotators=[(u.id, token_create(user=u, name="load")[1]) for u in annotators],
        items=items,
    )


def _feed(seeded: Seeded, tag: str, tallies: list[Tally], stop: threading.Event) -> None:
    """Import more items whenever fewer than a minute of submissions' worth are left."""
    from django.db import connection

    from annotation.models import Project
    from annotation.services import items_import

    last_count, last_at = 0, time.monotonic()
    try:
        while not stop.wait(FEED_CHECK_S):
            done = sum(len(t.confirmed) for t in tallies)
            now = time.monotonic()
            rate = (done - last_count) / max(now - last_at, 1e-6)
            last_count, last_at = done, now
            left = seeded.items * OVERLAP - done
            if left < max(rate * 60, 20 * len(tallies)):
                batch = int(max(rate * 120, 20 * len(tallies)) / OVERLAP) + 1
                project = Project.objects.get(pk=seeded.project_id)
                items_import(
                    project=project, lines=_item_lines(tag, seeded.items, batch), fmt="native"
                )
                seeded.items += batch
    finally:
        connection.close()


# --- jobs meanwhile --------------------------------------------------------------------


@dataclass
class JobOutcome:
    what: str
    status: str = "not launched"
    detail: str = ""
    seconds: float = 0.0


def job_plan(seconds: float) -> list[tuple[float, str]]:
    """``(seconds after the start, kind)``: FiFA at the start of each period, an export at a
    third and at two thirds of it. A soak repeats the period, so the worker's memory sees
    jobs all along; none starts in the last third of a period that would not fit."""
    period = min(seconds, JOB_PERIOD_S)
    starts = [n * period for n in range(int(seconds // period) if period else 1)] or [0.0]
    return [
        (start + offset * period, kind)
        for start in starts
        for offset, kind in ((0.0, "fifa"), (1 / 3, "export"), (2 / 3, "export"))
    ]


def _jobs(
    ctx: Context,
    seeded: Seeded,
    seconds: float,
    outcomes: list[JobOutcome],
    kinds: tuple[str, ...],
) -> None:
    """FiFA on the labelled project at once, an export of the load project at a third and
    at two thirds of the run; then poll every job until it ends (bounded)."""
    host, port = loopback_address(ctx.base_url)
    conn = Connection(host, port, seeded.admin_token)
    tally = Tally(user=0)
    requests = {
        "fifa": (
            f"/api/v1/projects/{seeded.curation_project_id}/jobs/",
            {"kind": "fifa", "params": FIFA_PARAMS},
        ),
        "export": (
            f"/api/v1/projects/{seeded.project_id}/datasets/",
            {"format": "trl_preference", "test_fraction": 0.25},
        ),
    }
    plan = [(at, kind, *requests[kind]) for at, kind in job_plan(seconds) if kind in kinds]
    poll_every = min(JOB_POLL_S, max(0.2, seconds / 20))
    started = time.monotonic()
    deadline = started + seconds + JOB_GRACE_S
    running: dict[str, tuple[JobOutcome, float]] = {}  # poll path -> (outcome, launched at)
    try:
        while (plan or running) and time.monotonic() < deadline:
            while plan and time.monotonic() >= started + plan[0][0]:
                _, what, path, body = plan.pop(0)
                outcome = JobOutcome(what=f"{what} (project {path.split('/')[4]})")
                outcomes.append(outcome)
                launched = _job_call(conn, tally, outcome, "POST", path, body, expect=202)
                if launched is not None:
                    poll = f"{path.rsplit('/', 2)[0]}/jobs/{launched['id']}/"
                    running[poll] = (outcome, time.monotonic())
            time.sleep(poll_every)
            for poll, (outcome, launched_at) in list(running.items()):
                job = _job_call(conn, tally, outcome, "GET", poll, None, expect=200)
                if job is not None and job["status"] in ("succeeded", "failed", "cancelled"):
                    outcome.seconds = time.monotonic() - launched_at
                    outcome.detail = (job.get("error") or "")[:200]
                    running.pop(poll)
        for outcome, _ in running.values():
            outcome.detail = f"still {outcome.status} {JOB_GRACE_S:.0f} s after the load ended"
    finally:
        conn.close()


def _job_call(
    conn: Connection,
    tally: Tally,
    outcome: JobOutcome,
    method: str,
    path: str,
    body: dict | None,
    *,
    expect: int,
) -> dict | None:
    """One launch or poll; a failure is noted on the outcome (a poll is tried again later)."""
    try:
        status, data, _ = conn.call(
            tally, method, path, json.dumps(body).encode() if body else None
        )
        if status != expect:
            outcome.status = f"{method} answered {status}"
            outcome.detail = data[:200].decode(errors="replace")
            return None
        job = json.loads(data)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if method == "POST":
            outcome.status = "launch failed"
        outcome.detail = f"{type(exc).__name__}: {exc}"
        conn.close()
        return None
    outcome.status = job["status"]
    return job


# --- accounting ------------------------------------------------------------------------


@dataclass
class Stored:
    annotation: int
    assignment: int | None
    item: int
    user: int | None
    answers: int


@dataclass
class Reconciliation:
    confirmed: int
    stored: int
    lost: list[int]  # confirmed, not in the database
    unconfirmed: list[int]  # in the database, never confirmed to a client
    doubled: list[str]  # one submission stored or confirmed twice
    misfiled: list[int]  # stored under another annotator or assignment, or without its answer

    @property
    def bad(self) -> int:
        return len(self.lost) + len(self.unconfirmed) + len(self.doubled) + len(self.misfiled)


def reconcile(
    confirmations: list[Confirmation],
    replays: list[tuple[int, int, bool]],
    stored: list[Stored],
    *,
    answers_each: int = 1,
) -> Reconciliation:
    """Compare what the clients were told with what the database holds."""
    doubled: list[str] = []
    seen: dict[int, int] = {}  # assignment -> annotation
    for c in confirmations:
        if c.assignment in seen and seen[c.assignment] != c.annotation:
            doubled.append(
                f"assignment {c.assignment} confirmed as {seen[c.assignment]} and {c.annotation}"
            )
        seen.setdefault(c.assignment, c.annotation)
    for first, again, said_replayed in replays:
        if first != again or not said_replayed:
            doubled.append(f"replay of {first} answered {again} (replayed={said_replayed})")
    for what, key in (
        ("item, annotator", lambda s: (s.item, s.user)),
        ("assignment", lambda s: s.assignment),
    ):
        counts = Counter(key(s) for s in stored if key(s) not in (None, (s.item, None)))
        doubled += [f"{what} {k} stored {n} times" for k, n in counts.items() if n > 1]
    by_id = {s.annotation: s for s in stored}
    confirmed = {c.annotation: c for c in confirmations}
    misfiled = [
        c.annotation
        for c in confirmed.values()
        if (s := by_id.get(c.annotation)) is not None
        and (s.user != c.user or s.assignment != c.assignment or s.answers != answers_each)
    ]
    return Reconciliation(
        confirmed=len(confirmed),
        stored=len(by_id),
        lost=sorted(set(confirmed) - set(by_id)),
        unconfirmed=sorted(set(by_id) - set(confirmed)),
        doubled=doubled,
        misfiled=misfiled,
    )


def stored_rows(project_id: int) -> list[Stored]:
    """Every annotation of the load project with its answer count, read from the database."""
    from django.db.models import Count

    from annotation.models import Annotation

    return [
        Stored(*row)
        for row in Annotation.objects.filter(project_id=project_id)
        .annotate(answer_rows=Count("pairwise_answers"))
        .values_list("id", "assignment_id", "item_id", "annotator_id", "answer_rows")
    ]


# --- memory over a soak -----------------------------------------------------------------


def _sample_rss(
    ctx: Context, samples: list[tuple[float, dict[str, int]]], stop: threading.Event
) -> None:
    started = time.monotonic()
    while True:
        samples.append((time.monotonic() - started, dict(ctx.stack.process_rss())))  # type: ignore[union-attr]
        if stop.wait(RSS_INTERVAL_S):
            return


def rss_growth(samples: list[tuple[float, dict[str, int]]], run_seconds: float) -> Figure:
    """The soak figure: every process's RSS growth after warm-up against ``SOAK_RULE``."""
    warmup = min(600.0, run_seconds / 3)
    after = [(t, rss) for t, rss in samples if t >= warmup]
    series: dict[str, list[int]] = {}
    for _, rss in after:
        for name, value in rss.items():
            series.setdefault(name, []).append(value)
        series.setdefault("(all processes)", []).append(sum(rss.values()))
    failures, metrics = [], {}
    judged = {name: values for name, values in series.items() if len(values) >= 2}
    for name, values in judged.items():
        first = statistics.median(values[:3])
        last = statistics.median(values[-3:])
        floor = 64 * MIB if name == "(all processes)" else 32 * MIB
        bound = max(floor, 0.10 * first)
        metrics[name] = {"first_mib": round(first / MIB, 1), "last_mib": round(last / MIB, 1)}
        if last - first > bound:
            failures.append(
                f"{name}: {first / MIB:.0f} -> {last / MIB:.0f} MiB (bound +{bound / MIB:.0f} MiB)"
            )
    return Figure(
        SECTION,
        "memory flat over the soak",
        tried=len(judged),
        held=len(judged) - len(failures),
        detail=f"{len(samples)} samples every {RSS_INTERVAL_S:.0f} s, warm-up {warmup:.0f} s; "
        + (f"{len(judged)} processes within bound" if judged else "too short to judge"),
        metrics={"rule": SOAK_RULE, "processes": metrics, "samples": len(samples)},
        failures=failures,
    )


# --- the check ----------------------------------------------------------------------------


def _pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    cuts = (
        statistics.quantiles(values, n=100, method="inclusive")
        if len(values) > 1
        else [values[0]] * 99
    )
    return {
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "max": round(max(values), 1),
    }


def run(ctx: Context) -> list[Figure]:
    soak_minutes = ctx.options.get("soak_minutes")
    clients = int(ctx.options.get("load_clients", QUICK_CLIENTS if ctx.quick else CLIENTS))
    seconds = float(
        soak_minutes * 60
        if soak_minutes
        else ctx.options.get("load_seconds", QUICK_SECONDS if ctx.quick else SECONDS)
    )
    host, port = loopback_address(ctx.base_url)
    tag = uuid.uuid4().hex[:8]
    seed_started = time.monotonic()
    seeded = seed(
        tag=tag, clients=clients, items=int(min(seconds, 600) * SEED_RATE_PER_S / OVERLAP)
    )
    seed_seconds = time.monotonic() - seed_started

    stop = threading.Event()
    tallies = [Tally(user=user) for user, _ in seeded.annotators]
    outcomes: list[JobOutcome] = []
    rss: list[tuple[float, dict[str, int]]] = []
    started, cpu_started = time.monotonic(), time.process_time()
    deadline = started + seconds
    ramp = float(ctx.options.get("load_ramp_seconds", min(RAMP_S, seconds / 10)))
    threads = [
        threading.Thread(
            target=annotate,
            kwargs=dict(
                host=host, port=port, token=token, project_id=seeded.project_id, tally=tally,
                deadline=deadline, stop=stop, key_prefix=f"load-{tag}-{n}",
                start_at=started + n * ramp / clients,
            ),
            name=f"load-{n}", daemon=True,
        )
        for n, ((_, token), tally) in enumerate(zip(seeded.annotators, tallies, strict=True))
    ]  # fmt: skip
    helpers = [
        threading.Thread(target=_feed, args=(seeded, tag, tallies, stop), daemon=True),
    ]
    jobs = threading.Thread(
        target=_jobs,
        args=(ctx, seeded, seconds, outcomes, tuple(ctx.options.get("load_jobs", JOB_KINDS))),
        daemon=True,
    )
    if soak_minutes and ctx.stack is not None:
        helpers.append(threading.Thread(target=_sample_rss, args=(ctx, rss, stop), daemon=True))
    for thread in [*threads, *helpers, jobs]:
        thread.start()
    # A client past the deadline is finishing one request at most (30 s timeout, one retry).
    join_until = deadline + 2 * REQUEST_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, join_until - time.monotonic()))
    elapsed = time.monotonic() - started
    client_cpu = time.process_time() - cpu_started
    stop.set()
    for thread in helpers:
        thread.join(60.0)
    jobs.join(max(0.0, deadline + JOB_GRACE_S + 30 - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)

    confirmations = [c for t in tallies for c in t.confirmed]
    replays = [r for t in tallies for r in t.replays]
    result = reconcile(confirmations, replays, stored_rows(seeded.project_id))
    return _figures(
        clients=clients, seconds=elapsed, seed_seconds=seed_seconds, tallies=tallies,
        result=result, outcomes=outcomes, stuck=stuck, seeded=seeded, client_cpu=client_cpu,
    ) + ([_soak_figure(ctx, rss, elapsed)] if soak_minutes else [])  # fmt: skip


def _soak_figure(ctx: Context, rss: list[tuple[float, dict[str, int]]], elapsed: float) -> Figure:
    if ctx.stack is None:
        return Figure(
            SECTION, "memory flat over the soak", tried=0, held=0,
            detail="not judged: no stack to sample process RSS from",
        )  # fmt: skip
    return rss_growth(rss, elapsed)


def _figures(
    *,
    clients: int,
    seconds: float,
    seed_seconds: float,
    tallies: list[Tally],
    result: Reconciliation,
    outcomes: list[JobOutcome],
    stuck: int,
    seeded: Seeded,
    client_cpu: float,
) -> list[Figure]:
    submit_ms = [ms for t in tallies for ms in t.submit_ms]
    next_ms = [ms for t in tallies for ms in t.next_ms]
    requests = sum(t.requests for t in tallies)
    attempts = requests + sum(t.failed for t in tallies) + stuck
    errors: Counter = sum((t.errors for t in tallies), Counter())
    error_count = sum(errors.values()) + stuck
    server_errors = sum(n for what, n in errors.items() if what.split()[-1].startswith("5"))
    reconnects = sum(t.reconnects for t in tallies)
    empty = sum(t.empty for t in tallies)
    rate = result.confirmed / seconds if seconds else 0.0
    # Keep-alive connections stay with the gunicorn worker that accepted them, so clients
    # on a crowded worker wait longer: the spread shows it.
    per_client = sorted(len(t.confirmed) for t in tallies)
    submit, nxt = _pct(submit_ms), _pct(next_ms)
    who = f"{clients} annotators x {seconds:.0f} s"
    examples = [e for t in tallies for e in t.examples][:5]
    if stuck:
        examples.append(f"{stuck} client(s) still running 60 s past the deadline")
    succeeded = [o for o in outcomes if o.status == "succeeded"]
    return [
        Figure(
            SECTION, "throughput", tried=result.confirmed, held=result.confirmed,
            detail=f"{rate:.1f} submissions/s ({who}; {requests} requests; load generator "
            f"{100 * client_cpu / seconds:.0f}% of a core)",
            metrics={"submissions_per_s": round(rate, 2), "clients": clients,
                     "seconds": round(seconds, 1), "requests": requests,
                     "seed_seconds": round(seed_seconds, 1), "items": seeded.items,
                     "empty_answers": empty, "reconnects": reconnects,
                     "client_cpu_s": round(client_cpu, 1),
                     "per_client_min_median_max": [per_client[0], statistics.median(per_client),
                                                   per_client[-1]] if per_client else []},
        ),
        Figure(
            SECTION, "submit latency", tried=len(submit_ms), held=len(submit_ms),
            detail="p50/p95/p99 {p50}/{p95}/{p99} ms, max {max} ms".format(**submit), metrics=submit,
        ),
        Figure(
            SECTION, "next/ latency", tried=len(next_ms), held=len(next_ms),
            detail="p50/p95/p99 {p50}/{p95}/{p99} ms, max {max} ms".format(**nxt), metrics=nxt,
        ),
        Figure(
            SECTION, "requests without error", tried=attempts, held=attempts - error_count,
            lost=server_errors,
            detail=f"{error_count} errors"
            + (f" ({', '.join(f'{k}: {n}' for k, n in errors.most_common(4))})" if errors else "")
            + f"; {reconnects} dropped keep-alive connections retried; {empty} 'nothing left'",
            metrics={"errors": dict(errors), "stuck_clients": stuck, "reconnects": reconnects},
            failures=examples,
        ),
        Figure(
            SECTION, "confirmed submissions stored once", tried=result.confirmed,
            held=result.confirmed - len(result.lost) - len(result.misfiled), lost=result.bad,
            detail=f"{result.confirmed} confirmed, {result.stored} stored; lost "
            f"{len(result.lost)}, doubled {len(result.doubled)}, unconfirmed "
            f"{len(result.unconfirmed)}, misfiled {len(result.misfiled)}",
            metrics={"confirmed": result.confirmed, "stored": result.stored,
                     "lost": len(result.lost), "doubled": len(result.doubled),
                     "unconfirmed": len(result.unconfirmed), "misfiled": len(result.misfiled)},
            failures=[f"lost annotation {a}" for a in result.lost[:2]]
            + [f"unconfirmed annotation {a}" for a in result.unconfirmed[:2]]
            + result.doubled[:2] + [f"misfiled annotation {a}" for a in result.misfiled[:2]],
        ),
        Figure(
            SECTION, "jobs during the load", tried=len(outcomes), held=len(succeeded),
            detail=", ".join(f"{o.what} {o.status} {o.seconds:.0f} s" for o in outcomes),
            metrics={"jobs": [o.__dict__ for o in outcomes]},
            failures=[f"{o.what}: {o.status} {o.detail}" for o in outcomes if o not in succeeded],
        ),
    ]  # fmt: skip

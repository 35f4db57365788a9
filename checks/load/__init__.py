"""Load: 50 annotators for two minutes against the app, with curation and export jobs meanwhile.

``run(ctx)`` seeds a project of its own (items for the whole run, 50 annotators with
tokens), runs one thread per annotator (``checks.load.generator``) for
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

import statistics
import threading
import time
import uuid
from collections import Counter

from checks.core import Context, Figure
from checks.load.accounting import (
    SECTION,
    Reconciliation,
    reconcile,
    rss_growth,
    sample_rss,
    stored_rows,
)
from checks.load.generator import REQUEST_TIMEOUT_S, Tally, annotate, loopback_address
from checks.load.jobs import JOB_GRACE_S, JOB_KINDS, JobOutcome, run_jobs
from checks.load.seeding import OVERLAP, SEED_RATE_PER_S, Seeded, feed, seed

__all__ = ["run"]

CLIENTS, QUICK_CLIENTS = 50, 8
SECONDS, QUICK_SECONDS = 120, 10
# Annotators arrive over the first seconds rather than in one burst of connects.
RAMP_S = 5.0


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
        threading.Thread(target=feed, args=(seeded, tag, tallies, stop), daemon=True),
    ]
    jobs = threading.Thread(
        target=run_jobs,
        args=(ctx, seeded, seconds, outcomes, tuple(ctx.options.get("load_jobs", JOB_KINDS))),
        daemon=True,
    )
    if soak_minutes and ctx.stack is not None:
        helpers.append(threading.Thread(target=sample_rss, args=(ctx, rss, stop), daemon=True))
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

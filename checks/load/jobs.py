"""The jobs launched through the API while the annotators work: FiFA and dataset exports."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass

from checks.core import Context
from checks.load.generator import Connection, Tally, loopback_address
from checks.load.seeding import Seeded

JOB_GRACE_S = 120.0
JOB_POLL_S = 2.0
# Small enough to train in seconds on a CPU; embedding 120 short texts dominates.
FIFA_PARAMS = {"folds": 2, "epochs": 20, "hidden": 16}
JOB_KINDS = ("fifa", "export")
JOB_PERIOD_S = 300.0


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


def run_jobs(
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

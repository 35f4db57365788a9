"""What the clients were told against what the database holds; memory over a soak."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass

from checks.core import Context, Figure
from checks.load.generator import Confirmation

SECTION = "load"
RSS_INTERVAL_S = 30.0
MIB = 1024 * 1024
SOAK_RULE = (
    "after warm-up (the first third of the run, at most 10 min), a process fails when the "
    "median of its last 3 RSS samples exceeds the median of its first 3 by more than "
    "max(32 MiB, 10%); the sum over all processes by more than max(64 MiB, 10%)"
)


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


def sample_rss(
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

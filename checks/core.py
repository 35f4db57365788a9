"""What every check gets (``Context``) and gives back (``Figure``), and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from checks.stack import Stack
    from checks.world import World


@dataclass
class Figure:
    """One line of the report.

    ``tried``: how many attacks, routes x roles, faults or requests were tried.
    ``held``: how many of them Ballot withstood (blocked, refused cleanly, survived).
    ``lost``: what went wrong that must never: leaks, 5xx, rows lost or doubled,
    scripts run. A figure passes when ``held == tried`` and ``lost == 0``.
    ``detail``: one short human line (figures such as "312 sub/s, p95 41 ms").
    ``metrics``: numbers for the JSON report. ``failures``: up to a few examples of
    what did not hold, for the reader to reproduce.
    """

    section: str
    name: str
    tried: int
    held: int
    lost: int = 0
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.held == self.tried and self.lost == 0

    @property
    def status(self) -> str:
        """ok, FAIL, or "not run": nothing tried, a check that could not run here (such
        as a vulnerability service out of reach); it does not fail the report."""
        if not self.ok:
            return "FAIL"
        return "ok" if self.tried else "not run"


@dataclass
class Tally:
    """The counts behind one figure of ``section``: every case checked either held or
    failed, and a failure that must never happen (a leak, a 5xx, a row lost or doubled)
    is counted as lost too. A few failures are kept as examples."""

    section: str
    tried: int = 0
    held: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, case: str, *, lost: bool = True) -> None:
        self.tried += 1
        if ok:
            self.held += 1
            return
        self.lost += int(lost)
        if len(self.failures) < 8:
            self.failures.append(case)

    def figure(self, name: str, detail: str, **metrics: Any) -> Figure:
        return Figure(
            self.section,
            name,
            self.tried,
            self.held,
            self.lost,
            detail,
            metrics,
            list(self.failures),
        )


@dataclass
class Context:
    """The running app a check aims at.

    ``base_url``: where it serves (no trailing slash). ``world``: the principals and
    rows seeded for the attacks. ``stack``: process control (kill a worker, restart
    Redis or PostgreSQL); ``None`` when the app runs elsewhere (a pytest live server),
    and the checks that need it then skip. ``fingerprint``: every table's row count
    and checksum, read from the app's database (compare before and after an attack:
    nothing written). ``out_dir``: where a check may leave artefacts (screenshots,
    logs). ``quick``: a smaller run for the tests of the checks themselves.
    """

    base_url: str
    world: World
    out_dir: Path
    fingerprint: Callable[[], dict[str, Any]]
    stack: Stack | None = None
    quick: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def extend(self, figures: list[Figure]) -> None:
        self.figures.extend(figures)

    @property
    def ok(self) -> bool:
        return bool(self.figures) and all(f.ok for f in self.figures)

    def table(self) -> str:
        head = ("section", "what", "tried", "held", "lost", "", "detail")
        rows = [
            (
                f.section,
                f.name,
                str(f.tried),
                str(f.held),
                str(f.lost),
                f.status,
                f.detail,
            )
            for f in self.figures
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(r: tuple[str, ...]) -> str:
            cells = zip(r, widths, strict=True)
            return "  ".join(
                c.ljust(w) if i in (0, 1, 5, 6) else c.rjust(w) for i, (c, w) in enumerate(cells)
            ).rstrip()

        out = [line(head), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in rows]
        total_tried = sum(f.tried for f in self.figures)
        total_lost = sum(f.lost for f in self.figures)
        out.append("")
        out.append(
            f"{len(self.figures)} figures, {total_tried} tried, "
            f"{sum(not f.ok for f in self.figures)} failed, "
            f"{sum(f.status == 'not run' for f in self.figures)} not run, "
            f"rows/leaks lost: {total_lost}"
        )
        for f in self.figures:
            for example in f.failures[:5]:
                out.append(f"  {f.section} / {f.name}: {example}")
        return "\n".join(out)

    def write_json(self, path: Path, **extra: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "ok": self.ok,
            "figures": [asdict(f) | {"ok": f.ok, "status": f.status} for f in self.figures],
            "lost": sum(f.lost for f in self.figures),
            **extra,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))

"""``python -m checks``: start Ballot in its production shape, attack it, break it, load it,
and print what held.

    python -m checks                       # everything (make check)
    python -m checks --only access,faults  # some modules
    python -m checks --quick               # smaller runs (the checks' own tests)
    python -m checks --soak 30             # the load module also soaks for 30 minutes
    python -m checks --keep                # leave the stack running after the report

The report is printed as a table and written to var/check/report.json (and to
test-artifacts/check-report.json when that folder exists). The exit status is 0 only
when every figure held and nothing was lost.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checks.core import Context, Figure, Report

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "var" / "check"
MODULES = ("access", "injection", "outbound", "bad_input", "faults", "load", "deployment")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m checks", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated modules to run, in this order: {', '.join(MODULES)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES")
    parser.add_argument("--keep", action="store_true", help="keep the stack up until Ctrl-C")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(MODULES))
    if unknown:
        parser.error(f"--only: unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    args.modules = [m for m in MODULES if m in wanted] if wanted else list(MODULES)
    return args


def run_module(name: str, ctx: Context) -> list[Figure]:
    """Run ``checks.<name>``; a module that is missing or raises is one failing figure.

    Anything a module returns that is not a list of figures is a failure too: a check
    that reports nothing must not read as a check that passed.
    """
    try:
        module = importlib.import_module(f"checks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"checks.{name}":
            return [_crashed(name, exc)]
        return [Figure(name, "not built", 1, 0, detail=f"checks/{name}.py does not exist yet")]
    except Exception as exc:  # noqa: BLE001 - an import error is a result of this module
        return [_crashed(name, exc)]
    try:
        figures = module.run(ctx)
    except Exception as exc:  # noqa: BLE001 - reported as a failing figure, the run goes on
        return [_crashed(name, exc)]
    if not isinstance(figures, list) or not figures:
        return [Figure(name, "reported nothing", 1, 0, detail=f"run() returned {figures!r:.80}")]
    bad = [f for f in figures if not isinstance(f, Figure)]
    if bad:
        return [Figure(name, "reported non-figures", 1, 0, detail=f"{bad[0]!r:.80}")]
    return figures


def _crashed(name: str, exc: BaseException) -> Figure:
    trace = "".join(traceback.format_exception(exc))
    return Figure(
        name,
        "crashed",
        1,
        0,
        detail=f"{type(exc).__name__}: {str(exc)[:150]}",
        failures=[trace[-3000:]],
    )


def run_modules(
    modules: list[str],
    ctx: Context,
    report: Report,
    timings: dict[str, float],
    between: Callable[[], None] = lambda: None,
) -> None:
    for name in modules:
        started = time.monotonic()
        print(f"[check] {name} ...", flush=True)
        figures = run_module(name, ctx)
        timings[name] = round(time.monotonic() - started, 1)
        report.extend(figures)
        failed = sum(not f.ok for f in figures)
        print(
            f"[check] {name}: {len(figures)} figures, {failed} failed, {timings[name]} s",
            flush=True,
        )
        between()


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C, through the finally that stops the stack.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    from checks.stack import Stack

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    report = Report()
    timings: dict[str, float] = {}
    extra: dict[str, Any] = {"modules": args.modules, "quick": args.quick}
    begun = time.monotonic()
    stack = Stack(logs_to=OUT_DIR / "logs")
    interrupted = False
    try:
        started = time.monotonic()
        print("[check] starting PostgreSQL, Redis, gunicorn and the Celery workers ...", flush=True)
        stack.start()
        timings["startup"] = round(time.monotonic() - started, 1)
        extra["stack"] = {"timings": stack.timings, "base_url": stack.base_url}

        # This process reads and seeds the stack's database with the stack's settings.
        os.environ.update(stack.env)
        import django

        django.setup()
        # The checks' HTTP clients would log every request at INFO through Django's root logger.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        from django.db import connections

        from checks.world import fingerprint, seed_world

        started = time.monotonic()
        world = seed_world("check")
        timings["seed"] = round(time.monotonic() - started, 1)
        ctx = Context(
            base_url=stack.base_url,
            world=world,
            out_dir=OUT_DIR,
            fingerprint=fingerprint,
            stack=stack,
            quick=args.quick,
            options={"soak_minutes": args.soak},
        )
        extra["rss_before"] = stack.process_rss()
        # A module may restart PostgreSQL: the next one starts on fresh connections.
        run_modules(args.modules, ctx, report, timings, between=connections.close_all)
        extra["rss_after"] = stack.process_rss()
        if args.keep:
            print(f"[check] the stack serves {stack.base_url}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        interrupted = True
        report.extend([Figure("check", "interrupted", 1, 0, detail="stopped by Ctrl-C/SIGTERM")])
    except Exception as exc:  # noqa: BLE001 - a stack that does not start is a failed check
        report.extend([_crashed("stack", exc)])
    finally:
        started = time.monotonic()
        stack.stop()
        timings["stop"] = round(time.monotonic() - started, 1)
    timings["total"] = round(time.monotonic() - begun, 1)
    print()
    print(report.table())
    print(f"\ntimings (s): {', '.join(f'{k} {v}' for k, v in timings.items())}")
    report.write_json(OUT_DIR / "report.json", timings=timings, **extra)
    artifacts = REPO_ROOT / "test-artifacts"
    if artifacts.is_dir():
        report.write_json(artifacts / "check-report.json", timings=timings, **extra)
    if interrupted:
        return 130
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

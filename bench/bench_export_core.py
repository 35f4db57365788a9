"""Throughput and peak memory of the export core (record -> row -> JSONL / Parquet).

Each measurement runs in a fresh interpreter so ``ru_maxrss`` (the peak resident
set size of that process) belongs to one export alone, including the
interpreter and pyarrow themselves. Rows are synthetic preference pairs of a
realistic size (about 600 characters of text each), generated lazily as a
database cursor would yield them (cycling a pool of 10,000 distinct records),
with a 10 % grouped test split and pseudonymised annotators.

Usage::

    python bench/bench_export_core.py                 # 100k and 1M rows, JSONL and Parquet
    python bench/bench_export_core.py --sizes 100000  # a quicker run

Aims: at least 50,000 rows/s to JSONL and a peak under 300 MB at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))

from curation.exports import ExportOptions, SplitPolicy, write_export  # noqa: E402
from curation.records import PreferencePair  # noqa: E402

AIM_JSONL_ROWS_PER_SECOND = 50_000
AIM_PEAK_MB = 300


POOL_SIZE = 10_000


def synthetic_pairs(count: int) -> Iterator[PreferencePair]:
    """``count`` preference pairs over 5,000 distinct prompts, yielded one at a time.

    A pool of 10,000 distinct records is built once and cycled, so the figures
    measure the export core (rows, splits, encoding, files), not the cost of
    constructing dataclasses, which in production is the database cursor's.
    """
    filler = "The answer considers the context carefully and explains each step. " * 4
    pool = [
        PreferencePair(
            item_id=i,
            external_id=f"item-{i}",
            prompt=[{"role": "user", "content": f"Question {i % 5_000}: explain it briefly."}],
            chosen_text=f"Answer {i}. {filler}",
            rejected_text=f"Worse answer {i}. {filler}",
            chosen_response_id=2 * i,
            rejected_response_id=2 * i + 1,
            kind="pairwise",
            question="preference",
            margin=float(i % 3),
            annotators=(f"annotator-{i % 50}", f"annotator-{(i + 7) % 50}"),
        )
        for i in range(min(count, POOL_SIZE))
    ]
    for i in range(count):
        yield pool[i % POOL_SIZE]


def run_child(rows: int, output: str) -> dict[str, float]:
    """One export in this process; returns rows/s and peak RSS."""
    workdir = Path(tempfile.mkdtemp(prefix="ballot-bench-"))
    try:
        started = time.perf_counter()
        result = write_export(
            synthetic_pairs(rows),
            destination=workdir / "export",
            format_name="trl_preference",
            options=ExportOptions(
                include_margin=True, annotator_secret=b"benchmark-secret-0123456789"
            ),
            outputs=(output,),
            split=SplitPolicy(test_fraction=0.1, seed=0),
            code_version="bench",
        )
        elapsed = time.perf_counter() - started
        written = result.manifest["rows_total"]
        size = sum(f["bytes"] for f in result.manifest["files"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "rows": written,
        "seconds": elapsed,
        "rows_per_second": written / elapsed,
        "peak_mb": peak_kib * 1024 / 1e6,
        "output_mb": size / 1e6,
    }


def measure(rows: int, output: str) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(rows), output],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--outputs", nargs="+", default=["jsonl", "parquet"], choices=["jsonl", "parquet"]
    )
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(int(args.child[0]), args.child[1])))
        return

    print(
        f"{'output':8} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak MB':>8} {'file MB':>8}  aims"
    )
    for size in args.sizes:
        for output in args.outputs:
            figures = measure(size, output)
            aims = [
                f"peak<{AIM_PEAK_MB}MB " + ("ok" if figures["peak_mb"] < AIM_PEAK_MB else "MISSED")
            ]
            if output == "jsonl":
                ok = figures["rows_per_second"] >= AIM_JSONL_ROWS_PER_SECOND
                aims.append(f">={AIM_JSONL_ROWS_PER_SECOND} rows/s " + ("ok" if ok else "MISSED"))
            print(
                f"{output:8} {figures['rows']:>10,.0f} {figures['seconds']:>8.2f} "
                f"{figures['rows_per_second']:>10,.0f} {figures['peak_mb']:>8.1f} "
                f"{figures['output_mb']:>8.1f}  {', '.join(aims)}"
            )


if __name__ == "__main__":
    main()
